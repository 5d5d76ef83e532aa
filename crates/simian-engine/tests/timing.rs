//! The engine's timing logic under tokio's paused clock: holds, waits,
//! max_duration, stop conditions, signals. Fast and deterministic.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use simian_engine::{EventKind, Planned, Prepared, RunReport, Verdict};
use simian_injectors::{Fault, FaultError, Plan, RevertRecord};
use tokio::sync::{mpsc, watch};

struct TestFault {
    plan: Plan,
    applied: Arc<AtomicUsize>,
    apply_takes: Duration,
}

#[async_trait]
impl Fault for TestFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }
    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(support::empty_record())
    }
    async fn apply(&self, _: &RevertRecord) -> Result<(), FaultError> {
        self.applied.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.apply_takes).await;
        Ok(())
    }
}

struct Bed {
    prepared: Prepared,
    healthy: Arc<AtomicBool>,
    applied: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

/// An experiment over one synthetic probe `p` that observes every 10ms.
fn bed(method: &str, extra: &str, apply_takes: Duration) -> Bed {
    let yaml = format!(
        "version: 1\nname: t\nsteady_state:\n  probes:\n    p: {{ tcp: {{ address: \"127.0.0.1:9\" }} }}\n  hypothesis:\n    - p.success_ratio >= 99%\n  before: 5s\n  after: 5s\n  window: 1s\nmethod:\n{method}{extra}"
    );
    let loaded = support::load(&yaml);
    let applied = Arc::new(AtomicUsize::new(0));
    let faults = loaded
        .faults
        .iter()
        .map(|s| Planned {
            name: s.name.clone(),
            fault: Box::new(TestFault {
                plan: support::plan("test", "TEST", "nothing"),
                applied: applied.clone(),
                apply_takes,
            }) as Box<dyn Fault>,
        })
        .collect();
    let healthy = Arc::new(AtomicBool::new(true));
    let (rec, _feeder) = support::fed_recorder(healthy.clone());
    let dir = tempfile::tempdir().unwrap();
    let prepared = support::prepared(loaded, faults, rec, dir.path(), Duration::from_millis(250));
    Bed {
        prepared,
        healthy,
        applied,
        _dir: dir,
    }
}

async fn run(b: Bed, abort_at: Option<Duration>) -> RunReport {
    let (tx, rx) = watch::channel(None);
    if let Some(at) = abort_at {
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let _ = tx.send(Some("SIGINT received".into()));
        });
    } else {
        std::mem::forget(tx);
    }
    let (sink, _rx) = mpsc::unbounded_channel();
    simian_engine::execute(b.prepared, rx, sink).await
}

fn at(r: &RunReport, f: impl Fn(&EventKind) -> bool) -> Option<u64> {
    r.events.iter().find(|e| f(&e.kind)).map(|e| e.at_ms)
}

#[tokio::test(start_paused = true)]
async fn holds_and_waits_take_exactly_their_time() {
    let b = bed(
        "  - inject: { name: a, duration: 10s, process: { target: { lab: {} } } }\n  - wait: 5s\n",
        "",
        Duration::ZERO,
    );
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Injected { .. })),
        Some(5000)
    );
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(15000)
    );
    assert_eq!(
        at(&r, |k| matches!(
            k,
            EventKind::Phase {
                phase: simian_engine::Phase::After
            }
        )),
        Some(20000)
    );
    assert_eq!(r.duration_ms, 25000);
}

#[tokio::test(start_paused = true)]
async fn max_duration_aborts_on_time_and_reverts() {
    // The fault's apply never finishes in time: only max_duration can end the run.
    let b = bed(
        "  - inject: { name: slow, process: { target: { lab: {} } } }\n",
        "guards:\n  max_duration: 1m\n",
        Duration::from_secs(3600),
    );
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    assert_eq!(r.exit_code, 2);
    assert_eq!(r.reason.as_deref(), Some("max_duration of 1m reached"));
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Aborting { .. })),
        Some(60000)
    );
    assert_eq!(
        at(
            &r,
            |k| matches!(k, EventKind::Reverted { fault, .. } if fault == "slow")
        ),
        Some(60000)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_condition_reverts_within_a_tick_of_the_breach() {
    let b = bed(
        "  - inject: { name: a, process: { target: { lab: {} } } }\n  - wait: 1m\n",
        "stop_when:\n  - p.success_ratio < 50%\n",
        Duration::ZERO,
    );
    let healthy = b.healthy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(8)).await;
        healthy.store(false, Ordering::SeqCst);
    });
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    let stop = r.stop.clone().expect("a stop report");
    // Failures start at 8s; the 1s window is under 50% after 0.5s more; ticks are 250ms.
    assert!(
        (8500..=8750).contains(&stop.detected_ms),
        "detected at {}",
        stop.detected_ms
    );
    assert_eq!(stop.reverted_ms, Some(stop.detected_ms));
    assert!(r
        .reason
        .unwrap()
        .starts_with("stop condition `p.success_ratio < 50%` tripped"));
}

#[tokio::test(start_paused = true)]
async fn a_signal_aborts_at_once() {
    let b = bed(
        "  - inject: { name: a, process: { target: { lab: {} } } }\n  - wait: 1m\n",
        "",
        Duration::ZERO,
    );
    let r = run(b, Some(Duration::from_secs(7))).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    assert_eq!(r.reason.as_deref(), Some("SIGINT received"));
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(7000)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unsteady_system_is_never_injected() {
    let b = bed(
        "  - inject: { name: a, process: { target: { lab: {} } } }\n",
        "",
        Duration::ZERO,
    );
    b.healthy.store(false, Ordering::SeqCst);
    let applied = b.applied.clone();
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::NotRun);
    assert_eq!(r.exit_code, 3);
    assert_eq!(applied.load(Ordering::SeqCst), 0);
    assert_eq!(r.duration_ms, 5000);
}

#[tokio::test(start_paused = true)]
async fn a_breach_during_the_method_deviates_without_aborting() {
    let b = bed(
        "  - inject: { name: a, process: { target: { lab: {} } } }\n  - wait: 10s\n",
        "",
        Duration::ZERO,
    );
    let healthy = b.healthy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7)).await;
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        healthy.store(true, Ordering::SeqCst);
    });
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::Deviated);
    assert_eq!(r.exit_code, 1);
    let during = r
        .assertions
        .iter()
        .find(|a| a.phase == simian_engine::Phase::Method)
        .unwrap();
    assert_eq!(during.held, Some(false));
    let first = during.first_breach_ms.unwrap();
    assert!((7000..=7250).contains(&first), "first breach at {first}");
    // The method ran its full course: 5s before + 10s.
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(15000)
    );
}

#[tokio::test(start_paused = true)]
async fn a_parallel_group_ends_when_its_longest_branch_does() {
    let b = bed(
        "  - parallel:\n      - inject: { name: a, duration: 10s, process: { target: { lab: {} } } }\n      - inject: { name: b, duration: 4s, process: { target: { lab: {} } } }\n  - wait: 1s\n",
        "",
        Duration::ZERO,
    );
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    let reverted = |n: &str| {
        at(
            &r,
            |k| matches!(k, EventKind::Reverted { fault, .. } if fault == n),
        )
    };
    assert_eq!(
        at(
            &r,
            |k| matches!(k, EventKind::Injected { fault, .. } if fault == "b")
        ),
        Some(5000)
    );
    assert_eq!(reverted("b"), Some(9000));
    assert_eq!(reverted("a"), Some(15000));
    assert_eq!(
        at(&r, |k| matches!(
            k,
            EventKind::Phase {
                phase: simian_engine::Phase::Revert
            }
        )),
        Some(16000)
    );
}

const CONFIRM_METHOD: &str = "  - inject: { name: a, process: { target: { lab: {} } } }\n  - confirm: { message: \"zone down, go on?\", timeout: 30s }\n  - wait: 1s\n";

#[tokio::test(start_paused = true)]
async fn a_confirm_step_waits_for_the_operator_then_goes_on() {
    let mut b = bed(CONFIRM_METHOD, "", Duration::ZERO);
    let (tx, rx) = mpsc::unbounded_channel();
    b.prepared.operator = Some(rx);
    // An answer given before the step asks is not an answer to it.
    tx.send("too early".into()).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        tx.send("alice".into()).unwrap();
        std::future::pending::<()>().await;
    });
    let r = run(b, None).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::AwaitingOperator { .. })),
        Some(5000)
    );
    assert_eq!(
        at(
            &r,
            |k| matches!(k, EventKind::Confirmed { by } if by == "alice")
        ),
        Some(12000)
    );
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(13000)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_confirm_aborts_at_its_timeout_and_reverts() {
    let mut b = bed(CONFIRM_METHOD, "", Duration::ZERO);
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    b.prepared.operator = Some(rx);
    let r = run(b, None).await;
    drop(tx);
    assert_eq!(r.verdict, Verdict::Aborted);
    assert_eq!(
        r.reason.as_deref(),
        Some("no operator confirmed `zone down, go on?` within 30s")
    );
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(35000)
    );
}
