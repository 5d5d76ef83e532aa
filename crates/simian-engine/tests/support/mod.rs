//! What the engine's integration tests share: loading a test experiment, a
//! recorder fed with synthetic observations, and a prepared run around them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use simian_core::{Observation, Recorder};
use simian_engine::journal::{Header, Journal};
use simian_engine::{Planned, Prepared};
use simian_experiment::{Env, Loaded, ProcessAction};
use simian_injectors::{Plan, ProcessRevert, RevertRecord};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Loads a test experiment with no variables and no probe checks; panics with the rendered errors.
pub fn load(yaml: &str) -> Loaded {
    let var = |_: &str| None;
    let env = Env {
        var: &var,
        check_probe: &|_| Vec::new(),
        check_netfilter: &|_| Vec::new(),
    };
    simian_experiment::load("t.yaml", yaml, &env)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(yaml)).collect::<String>()))
}

/// A recorder that gets an observation every 10 ms, ok while `healthy` is.
pub fn fed_recorder(healthy: Arc<AtomicBool>) -> (Arc<Recorder>, JoinHandle<()>) {
    let rec = Arc::new(Recorder::new(Duration::from_secs(60)));
    let r = rec.clone();
    let feeder = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let ok = healthy.load(Ordering::SeqCst);
            r.record(Observation {
                at: Instant::now(),
                ok,
                latency: Duration::from_millis(1),
                value: None,
            });
        }
    });
    (rec, feeder)
}

/// A prepared run of `loaded` with probe `p` on `rec`, journaled in `dir`.
pub fn prepared(
    loaded: Loaded,
    faults: Vec<Planned>,
    rec: Arc<Recorder>,
    dir: &Path,
    tick: Duration,
) -> Prepared {
    let header = Header {
        run_id: "t".into(),
        experiment: "t".into(),
        file: "t.yaml".into(),
        sha256: String::new(),
        simian_version: "test".into(),
        user: "u".into(),
        host: "h".into(),
        pid: std::process::id(),
        command_line: vec![],
        seed: 1,
        started_at: String::new(),
    };
    let journal = Journal::create(&dir.join("j.jsonl"), header.clone()).unwrap();
    Prepared {
        loaded,
        faults,
        probes: BTreeMap::from([("p".to_string(), rec)]),
        journal,
        header,
        tick,
        operator: None,
        leashed: false,
    }
}

/// A test fault's plan: one target `x` of one of the `things`.
pub fn plan(backend: &str, action: &str, revert: &str) -> Plan {
    Plan {
        backend: backend.into(),
        action: action.into(),
        targets: vec!["x".into()],
        eligible: 1,
        universe: "things".into(),
        revert: revert.into(),
        irreversible: false,
        lease: None,
    }
}

/// A revert record that undoes nothing (a SIGCONT to no process), so reverting a test
/// fault touches nothing real.
pub fn empty_record() -> RevertRecord {
    RevertRecord::Process(ProcessRevert {
        action: ProcessAction::Stop,
        targets: vec![],
    })
}
