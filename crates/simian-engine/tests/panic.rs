//! A panic inside the engine still reverts every applied fault, from the journal.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use simian_engine::{Outcome, Planned};
use simian_experiment::ProcessAction;
use simian_injectors::{Fault, FaultError, Plan, ProcessRevert, RevertRecord, RevertTarget};
use tokio::sync::{mpsc, watch};

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
    let loaded = support::load(yaml);
    let plan = Plan {
        backend: "test".into(),
        action: "SIGSTOP".into(),
        targets: vec!["sleeper".into()],
        eligible: 1,
        universe: "sleepers".into(),
        revert: "SIGCONT".into(),
        irreversible: false,
        lease: None,
    };
    let (rec, feeder) = support::fed_recorder(Arc::new(AtomicBool::new(true)));
    let dir = tempfile::tempdir().unwrap();
    let faults = vec![Planned {
        name: "boom".into(),
        fault: Box::new(StopThenPanic { plan, pid }),
    }];
    let prepared = support::prepared(loaded, faults, rec, dir.path(), Duration::from_millis(50));
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
