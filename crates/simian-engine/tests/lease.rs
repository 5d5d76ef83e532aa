//! Leases under tokio's paused clock: the runner renews every applied fault that has one,
//! every third of the lease, only while it is applied; a failed renewal aborts the run.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use simian_engine::{EventKind, Planned, RunReport, Verdict};
use simian_injectors::{Fault, FaultError, Plan, RevertRecord};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

struct Leased {
    plan: Plan,
    t0: Instant,
    /// When each renewal came, in ms from the start.
    renewals: Arc<Mutex<Vec<u64>>>,
    /// Renewals fail from this one on (1-based).
    fail_from: Option<usize>,
    /// ... or never answer.
    hang: bool,
}

#[async_trait]
impl Fault for Leased {
    fn plan(&self) -> &Plan {
        &self.plan
    }
    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(support::empty_record())
    }
    async fn apply(&self, _: &RevertRecord) -> Result<(), FaultError> {
        Ok(())
    }
    async fn renew(&self, _: &RevertRecord) -> Result<(), FaultError> {
        let fail = {
            let mut r = self.renewals.lock().unwrap();
            r.push(self.t0.elapsed().as_millis() as u64);
            self.fail_from.is_some_and(|n| r.len() >= n)
        };
        match (fail, self.hang) {
            (true, true) => std::future::pending().await,
            (true, false) => Err(FaultError::Action("the lease ran out".into())),
            _ => Ok(()),
        }
    }
}

async fn run(lease: Option<u64>, fail_from: Option<usize>, hang: bool) -> (RunReport, Vec<u64>) {
    let yaml = "version: 1\nname: t\nsteady_state:\n  probes:\n    p: { tcp: { address: \"127.0.0.1:9\" } }\n  hypothesis:\n    - p.success_ratio >= 99%\n  before: 5s\n  after: 5s\n  window: 1s\nmethod:\n  - inject: { name: a, duration: 10500ms, process: { target: { lab: {} } } }\n  - wait: 5s\n";
    let loaded = support::load(yaml);
    let renewals = Arc::new(Mutex::new(Vec::new()));
    let faults = vec![Planned {
        name: "a".into(),
        fault: Box::new(Leased {
            plan: Plan {
                lease: lease.map(simian_core::Dur::from_secs),
                ..support::plan("test", "TEST", "nothing")
            },
            t0: Instant::now(),
            renewals: renewals.clone(),
            fail_from,
            hang,
        }) as Box<dyn Fault>,
    }];
    let (rec, _feeder) = support::fed_recorder(Arc::new(AtomicBool::new(true)));
    let dir = tempfile::tempdir().unwrap();
    let prepared = support::prepared(loaded, faults, rec, dir.path(), Duration::from_millis(250));
    let (tx, rx) = watch::channel(None);
    std::mem::forget(tx);
    let (sink, _rx) = mpsc::unbounded_channel();
    let r = simian_engine::execute(prepared, rx, sink).await;
    let got = renewals.lock().unwrap().clone();
    (r, got)
}

fn at(r: &RunReport, f: impl Fn(&EventKind) -> bool) -> Option<u64> {
    r.events.iter().find(|e| f(&e.kind)).map(|e| e.at_ms)
}

#[tokio::test(start_paused = true)]
async fn applied_faults_are_renewed_every_third_of_their_lease_and_only_then() {
    let (r, renewals) = run(Some(3), None, false).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    let injected = at(&r, |k| matches!(k, EventKind::Injected { .. })).unwrap();
    let reverted = at(&r, |k| matches!(k, EventKind::Reverted { .. })).unwrap();
    assert_eq!((injected, reverted), (5000, 15500));
    // Ticks every 1 s from the method's start (5 s); the fault is live from 5 s to 15.5 s.
    let want: Vec<u64> = (6..=15).map(|s| s * 1000).collect();
    assert_eq!(
        renewals, want,
        "renewed while applied, never after the revert"
    );
    assert!(
        r.faults[0].plan.lease.is_some(),
        "the report shows the lease"
    );
}

#[tokio::test(start_paused = true)]
async fn faults_without_a_lease_are_never_renewed() {
    let (r, renewals) = run(None, None, false).await;
    assert_eq!(r.verdict, Verdict::Held, "{:?}", r.reason);
    assert!(renewals.is_empty(), "{renewals:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_renewal_aborts_the_run_and_reverts_at_once() {
    let (r, renewals) = run(Some(3), Some(3), false).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    let reason = r.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("renewing the lease of `a` failed: the lease ran out"),
        "{reason}"
    );
    assert_eq!(renewals, [6000, 7000, 8000]);
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(8000),
        "reverted as soon as the renewal failed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_never_answers_aborts_within_a_renewal_period() {
    let (r, renewals) = run(Some(3), Some(2), true).await;
    assert_eq!(r.verdict, Verdict::Aborted);
    let reason = r.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("renewing the lease of `a` failed: no answer within 1s"),
        "{reason}"
    );
    assert_eq!(renewals, [6000, 7000]);
    assert_eq!(
        at(&r, |k| matches!(k, EventKind::Reverted { .. })),
        Some(8000),
        "reverted one period after the stuck renewal began, inside the lease"
    );
}
