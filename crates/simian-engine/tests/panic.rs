//! A panic inside the engine still reverts every applied fault, from the journal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use simian_core::{Observation, Recorder};
use simian_engine::journal::{Header, Journal};
use simian_engine::{Outcome, Planned, Prepared};
use simian_experiment::{Env, ProcessAction};
use simian_injectors::{Fault, FaultError, Plan, ProcessRevert, RevertRecord, RevertTarget};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// SIGSTOPs a real process, then panics.
struct StopThenPanic {
    plan: Plan,
    pid: u32,
}

fn proc_stat(pid: u32) -> (char, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s[s.rfind(')').unwrap() + 1..].split_whitespace().collect();
    (f[0].chars().next().unwrap(), f[19].parse().unwrap())
}

#[async_trait]
impl Fault for StopThenPanic {
    fn plan(&self) -> &Plan {
        &self.plan
    }
    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        let (_, start_time) = proc_stat(self.pid);
        Ok(RevertRecord::Process(ProcessRevert {
            action: ProcessAction::Stop,
            targets: vec![RevertTarget {
                pid: self.pid,
                start_time,
                label: "sleeper".into(),
                restart: None,
            }],
        }))
    }
    async fn apply(&self, _: &RevertRecord) -> Result<(), FaultError> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
        panic!("injector bug");
    }
}

#[tokio::test]
async fn a_panic_mid_method_reverts_from_the_journal() {
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = sleeper.id();
    let yaml = "version: 1\nname: t\nsteady_state:\n  probes:\n    p: { tcp: { address: \"127.0.0.1:9\" } }\n  hypothesis: [ \"p.success_ratio >= 99%\" ]\n  before: 300ms\n  after: 300ms\n  window: 300ms\nmethod:\n  - inject: { name: boom, process: { target: { lab: {} } } }\n  - wait: 10s\n";
    let var = |_: &str| None;
    let check = |_: &simian_experiment::ProbeSpec| Vec::new();
    let loaded = simian_experiment::load(
        "t.yaml",
        yaml,
        &Env {
            var: &var,
            check_probe: &check,
            check_netfilter: &|_| Vec::new(),
        },
    )
    .unwrap();
    let plan = Plan {
        backend: "test".into(),
        action: "SIGSTOP".into(),
        targets: vec!["sleeper".into()],
        eligible: 1,
        universe: "sleepers".into(),
        revert: "SIGCONT".into(),
        irreversible: false,
    };
    let rec = Arc::new(Recorder::new(Duration::from_secs(10)));
    let r = rec.clone();
    let feeder = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            r.record(Observation {
                at: Instant::now(),
                ok: true,
                latency: Duration::from_millis(1),
                value: None,
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
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
    let journal = Journal::create(&dir.path().join("j.jsonl"), header.clone()).unwrap();
    let prepared = Prepared {
        loaded,
        faults: vec![Planned {
            name: "boom".into(),
            fault: Box::new(StopThenPanic { plan, pid }),
        }],
        probes: BTreeMap::from([("p".to_string(), rec)]),
        journal,
        header,
        tick: Duration::from_millis(50),
    };
    let (_tx, rx) = watch::channel(None);
    let (sink, _events) = mpsc::unbounded_channel();
    let outcome = simian_engine::execute_guarded(prepared, rx, sink).await;
    feeder.abort();
    let state = proc_stat(pid).0;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    match outcome {
        Outcome::Panicked { message, recovered } => {
            assert_eq!(message, "injector bug");
            let r = recovered.expect("recovery read the journal");
            assert_eq!(r.reverted.len(), 1, "{:?}", r.failed);
        }
        Outcome::Finished(r) => panic!("expected a panic, got {:?}", r.verdict),
    }
    assert_ne!(state, 'T', "the process is still stopped after the panic");
}
