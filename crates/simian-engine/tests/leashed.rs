//! Leashed mode under tokio's paused clock: the probes run and the hypothesis is judged,
//! every action is logged at the time it would be taken, and no fault is touched.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use simian_engine::journal::Entry;
use simian_engine::{EventKind, Planned, RunReport, Verdict, Would};
use simian_injectors::shift::Ramp;
use simian_injectors::{Fault, FaultError, Plan, RevertRecord};
use tokio::sync::{mpsc, watch};

/// A fault (and ramp) that counts every call that would touch a backend.
struct Counted {
    plan: Plan,
    touched: Arc<AtomicUsize>,
}

#[async_trait]
impl Fault for Counted {
    fn plan(&self) -> &Plan {
        &self.plan
    }
    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        self.touched.fetch_add(1, Ordering::SeqCst);
        Ok(support::empty_record())
    }
    async fn apply(&self, _: &RevertRecord) -> Result<(), FaultError> {
        self.touched.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn ramp(&self) -> Option<&dyn Ramp> {
        Some(self)
    }
}

#[async_trait]
impl Ramp for Counted {
    async fn shift(&self, _share: f64) -> Result<(), FaultError> {
        self.touched.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// What a test watches while the prepared run runs.
struct Bed {
    touched: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    dir: tempfile::TempDir,
}

impl Bed {
    fn journal(&self) -> std::path::PathBuf {
        self.dir.path().join("j.jsonl")
    }
}

/// A leashed run over one synthetic probe `p` that observes every 10ms.
fn bed(method: &str) -> (simian_engine::Prepared, Bed) {
    let yaml = format!(
        "version: 1\nname: t\nsteady_state:\n  probes:\n    p: {{ tcp: {{ address: \"127.0.0.1:9\" }} }}\n  hypothesis:\n    - p.success_ratio >= 99%\n  before: 5s\n  after: 5s\n  window: 1s\nmethod:\n{method}"
    );
    let loaded = support::load(&yaml);
    let touched = Arc::new(AtomicUsize::new(0));
    let faults = loaded
        .faults
        .iter()
        .map(|s| Planned {
            name: s.name.clone(),
            fault: Box::new(Counted {
                plan: support::plan("test", "SIGSTOP", "SIGCONT"),
                touched: touched.clone(),
            }) as Box<dyn Fault>,
        })
        .collect();
    let healthy = Arc::new(AtomicBool::new(true));
    let (rec, _feeder) = support::fed_recorder(healthy.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut prepared =
        support::prepared(loaded, faults, rec, dir.path(), Duration::from_millis(250));
    prepared.leashed = true;
    let bed = Bed {
        touched,
        healthy,
        dir,
    };
    (prepared, bed)
}

async fn run(p: simian_engine::Prepared) -> RunReport {
    let (tx, rx) = watch::channel(None);
    std::mem::forget(tx);
    let (sink, _rx) = mpsc::unbounded_channel();
    simian_engine::execute(p, rx, sink).await
}

/// Every `Leashed` event: when, what it would do, and to what share.
fn leashed(r: &RunReport) -> Vec<(u64, Would, Option<f64>)> {
    r.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Leashed { would, share, .. } => Some((e.at_ms, *would, *share)),
            _ => None,
        })
        .collect()
}

fn intents(b: &Bed) -> usize {
    simian_engine::journal::read(&b.journal())
        .unwrap()
        .entries
        .iter()
        .filter(|e| matches!(e, Entry::Intent { .. } | Entry::Applied { .. }))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_leashed_inject_is_logged_at_its_times_and_never_applied() {
    let (p, b) = bed(
        "  - inject: { name: a, duration: 10s, process: { target: { lab: {} } } }\n  - wait: 5s\n",
    );
    let r = run(p).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert!(r.leashed);
    assert_eq!(
        b.touched.load(Ordering::SeqCst),
        0,
        "prepare/apply never called"
    );
    assert_eq!(
        leashed(&r),
        [(5000, Would::Inject, None), (15000, Would::Revert, None)]
    );
    let EventKind::Leashed {
        fault,
        action,
        targets,
        ..
    } = &r
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Leashed { .. }))
        .unwrap()
        .kind
    else {
        unreachable!()
    };
    assert_eq!(
        (fault.as_str(), action.as_str(), targets.as_slice()),
        ("a", "SIGSTOP", ["x".to_string()].as_slice())
    );
    assert!(
        r.events.iter().any(|e| matches!(&e.kind,
            EventKind::Leashed { would: Would::Revert, action, .. } if action == "SIGCONT")),
        "a would-be revert says how it reverts"
    );
    assert!(!r.events.iter().any(|e| matches!(
        e.kind,
        EventKind::Injected { .. } | EventKind::Reverted { .. }
    )));
    assert!(r
        .faults
        .iter()
        .all(|f| f.injected_ms.is_none() && f.reverted_ms.is_none()));
    assert_eq!(intents(&b), 0, "the journal has no intents");
    let started = simian_engine::journal::read(&b.journal())
        .unwrap()
        .entries
        .into_iter()
        .find_map(|e| match e {
            Entry::Event(ev) => match ev.kind {
                EventKind::Started { leashed, .. } => Some(leashed),
                _ => None,
            },
            _ => None,
        });
    assert_eq!(started, Some(true), "the journal says the run is leashed");
    let rec = simian_engine::recover(&b.journal()).await.unwrap();
    assert!(
        rec.reverted.is_empty() && rec.failed.is_empty(),
        "nothing to recover: {rec:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fault_still_applied_at_the_end_of_the_method_would_be_reverted_then() {
    let (p, b) = bed("  - inject: { name: a, process: { target: { lab: {} } } }\n  - wait: 3s\n");
    let r = run(p).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert_eq!(
        leashed(&r),
        [(5000, Would::Inject, None), (8000, Would::Revert, None)]
    );
    assert_eq!(b.touched.load(Ordering::SeqCst), 0);
}

const KONG: &str = "  - evacuate:\n      name: kong\n      from: us-east\n      to: us-west\n      by: 25%\n      every: 10s\n      hold: 20s\n      via: { lab: {} }\n";

#[tokio::test(start_paused = true)]
async fn a_leashed_evacuation_logs_every_shift_at_its_time_and_never_shifts() {
    let (p, b) = bed(KONG);
    let r = run(p).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert_eq!(
        b.touched.load(Ordering::SeqCst),
        0,
        "the shifter never called"
    );
    let shift = |at, share| (at, Would::Shift, Some(share));
    // Up every 10s from 5s, held 20s, back every 10s, then restored.
    assert_eq!(
        leashed(&r),
        [
            shift(5000, 0.25),
            shift(15000, 0.5),
            shift(25000, 0.75),
            shift(35000, 1.0),
            shift(55000, 0.75),
            shift(65000, 0.5),
            shift(75000, 0.25),
            (85000, Would::Restore, None),
        ]
    );
    let gates = r
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Gate { held: true, .. }))
        .count();
    assert_eq!(gates, 3, "the gates are still judged");
    assert!(!r
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Shifted { .. })));
    assert_eq!(intents(&b), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_gate_aborts_a_leashed_evacuation_which_would_restore_at_once() {
    let (p, b) = bed(KONG);
    let healthy = b.healthy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        healthy.store(false, Ordering::SeqCst);
    });
    let r = run(p).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    let reason = r.reason.clone().unwrap();
    assert!(
        reason.contains("the gate before step 3 (75%) of `kong` failed"),
        "{reason}"
    );
    let would = leashed(&r);
    assert_eq!(
        would[..2],
        [
            (5000, Would::Shift, Some(0.25)),
            (15000, Would::Shift, Some(0.5))
        ]
    );
    let (restore_at, how, _) = would[2];
    assert_eq!((how, would.len()), (Would::Restore, 3));
    assert!(
        (25000..25100).contains(&restore_at),
        "restored at {restore_at}"
    );
    assert_eq!(b.touched.load(Ordering::SeqCst), 0);
}
