//! Chaos Kong's ramp and `recovers_within` under tokio's paused clock: every step gated on
//! the hypothesis, a failing gate puts traffic back at once, recovery time is measured.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use simian_engine::{EventKind, Planned, RunReport, Verdict};
use simian_injectors::shift::Ramp;
use simian_injectors::{Fault, FaultError, Plan, RevertRecord};
use tokio::sync::{mpsc, watch};

/// A shift that records every share it is set to; from `breaks_at` on, the system turns
/// unhealthy (the region taking the traffic cannot carry it).
struct RampFault {
    plan: Plan,
    shares: Arc<Mutex<Vec<f64>>>,
    breaks_at: Option<f64>,
    healthy: Arc<AtomicBool>,
}

#[async_trait]
impl Fault for RampFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }
    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(support::empty_record())
    }
    async fn apply(&self, _: &RevertRecord) -> Result<(), FaultError> {
        self.shift(1.0).await
    }
    fn ramp(&self) -> Option<&dyn Ramp> {
        Some(self)
    }
}

#[async_trait]
impl Ramp for RampFault {
    async fn shift(&self, share: f64) -> Result<(), FaultError> {
        self.shares.lock().unwrap().push(share);
        if self.breaks_at.is_some_and(|b| share >= b) {
            self.healthy.store(false, Ordering::SeqCst);
        }
        Ok(())
    }
}

struct Bed {
    prepared: simian_engine::Prepared,
    shares: Arc<Mutex<Vec<f64>>>,
    healthy: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

fn bed(method: &str, steady_extra: &str, breaks_at: Option<f64>) -> Bed {
    let yaml = format!(
        "version: 1\nname: t\nsteady_state:\n  probes:\n    p: {{ tcp: {{ address: \"127.0.0.1:9\" }} }}\n  hypothesis:\n    - p.success_ratio >= 99%\n  before: 5s\n  after: 5s\n  window: 1s\n{steady_extra}method:\n{method}"
    );
    let loaded = support::load(&yaml);
    let shares = Arc::new(Mutex::new(Vec::new()));
    let healthy = Arc::new(AtomicBool::new(true));
    let faults = loaded
        .faults
        .iter()
        .map(|s| Planned {
            name: s.name.clone(),
            fault: Box::new(RampFault {
                plan: support::plan("shift", "move traffic", "restore"),
                shares: shares.clone(),
                breaks_at,
                healthy: healthy.clone(),
            }) as Box<dyn Fault>,
        })
        .collect();
    let (rec, _feeder) = support::fed_recorder(healthy.clone());
    let dir = tempfile::tempdir().unwrap();
    let prepared = support::prepared(loaded, faults, rec, dir.path(), Duration::from_millis(250));
    Bed {
        prepared,
        shares,
        healthy,
        _dir: dir,
    }
}

async fn run(b: Bed) -> RunReport {
    let (tx, rx) = watch::channel(None);
    std::mem::forget(tx);
    let (sink, _rx) = mpsc::unbounded_channel();
    simian_engine::execute(b.prepared, rx, sink).await
}

fn at(r: &RunReport, f: impl Fn(&EventKind) -> bool) -> Option<u64> {
    r.events.iter().find(|e| f(&e.kind)).map(|e| e.at_ms)
}

const KONG: &str = "  - evacuate:\n      name: kong\n      from: us-east\n      to: us-west\n      by: 25%\n      every: 10s\n      hold: 20s\n      via: { lab: {} }\n";

#[tokio::test(start_paused = true)]
async fn the_ramp_climbs_gated_holds_and_comes_back_step_by_step() {
    let b = bed(KONG, "", None);
    let shares = b.shares.clone();
    let r = run(b).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert_eq!(
        *shares.lock().unwrap(),
        [0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25]
    );
    let gates: Vec<bool> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Gate { held, .. } => Some(*held),
            _ => None,
        })
        .collect();
    assert_eq!(
        gates,
        [true, true, true],
        "a gate before each step after the first"
    );
    // 3 steps up and 3 down, 10s each, 20s held: the method takes 80s.
    let method = at(
        &r,
        |k| matches!(k, EventKind::Phase { phase } if format!("{phase:?}") == "Revert"),
    )
    .unwrap()
        - at(
            &r,
            |k| matches!(k, EventKind::Phase { phase } if format!("{phase:?}") == "Method"),
        )
        .unwrap();
    assert!((80_000..80_300).contains(&method), "method took {method}ms");
    assert!(at(
        &r,
        |k| matches!(k, EventKind::Reverted { fault, .. } if fault == "kong")
    )
    .is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failing_gate_stops_the_ramp_and_puts_traffic_back_at_once() {
    let b = bed(KONG, "", Some(0.5));
    let shares = b.shares.clone();
    let r = run(b).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    assert_eq!(r.exit_code, 2);
    let reason = r.reason.clone().unwrap();
    assert!(
        reason.contains("the gate before step 3 (75%) of `kong` failed: p.success_ratio"),
        "{reason}"
    );
    assert_eq!(
        *shares.lock().unwrap(),
        [0.25, 0.5],
        "no step past the failing gate"
    );
    let gate = at(&r, |k| matches!(k, EventKind::Gate { held: false, .. })).unwrap();
    let back = at(
        &r,
        |k| matches!(k, EventKind::Reverted { fault, .. } if fault == "kong"),
    )
    .unwrap();
    assert!(
        back - gate < 100,
        "traffic restored {}ms after the gate failed",
        back - gate
    );
}

#[tokio::test(start_paused = true)]
async fn time_to_recover_is_measured_from_the_revert() {
    // Unhealthy from the fault until 2s after its revert.
    let b = bed(
        "  - inject: { name: kong, shift: { from: us-east, to: us-west, via: { lab: {} } } }\n  - wait: 3s\n",
        "  recovers_within: 10s\n",
        Some(1.0),
    );
    let healthy = b.healthy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await; // 5s before + 3s method + 2s
        healthy.store(true, Ordering::SeqCst);
    });
    let r = run(b).await;
    let rec = r.recovery.clone().expect("a recovery report");
    let t = rec.time_to_recover.expect("recovered");
    // 2s until healthy, then the 1s window must hold only healthy observations... but the
    // window counts only what came after the revert, so about 2s.
    assert!((1.9..3.2).contains(&t), "time to recover {t}s");
    assert_eq!(rec.assertions, ["p.success_ratio >= 99%"]);
    let line = r
        .assertions
        .iter()
        .find(|a| a.assertion == "recovers within 10s")
        .unwrap();
    assert_eq!(line.held, Some(true), "{}", line.detail);
}

#[tokio::test(start_paused = true)]
async fn no_recovery_within_the_bound_deviates() {
    let b = bed(
        "  - inject: { name: kong, shift: { from: us-east, to: us-west, via: { lab: {} } } }\n  - wait: 3s\n",
        "  recovers_within: 4s\n",
        Some(1.0),
    );
    let r = run(b).await;
    assert_eq!(r.verdict, Verdict::Deviated);
    let rec = r.recovery.clone().unwrap();
    assert_eq!(rec.time_to_recover, None);
    let line = r
        .assertions
        .iter()
        .find(|a| a.assertion == "recovers within 4s")
        .unwrap();
    assert_eq!(line.held, Some(false));
    assert!(
        line.detail
            .starts_with("not recovered within 4s: p.success_ratio"),
        "{}",
        line.detail
    );
}
