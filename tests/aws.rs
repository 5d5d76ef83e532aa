//! AWS backends through the real binary against a moto server on 127.0.0.1 (started per
//! test): `scenarios/aws/chaos-gorilla.yaml` stops exactly the opted-in instances of one
//! zone, starts them again, refuses without `--yes`, and `recover` undoes a SIGKILLed run.
//! The binary finds moto by the SDK's standard environment alone.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

#[path = "../crates/simian-aws/tests/support/mod.rs"]
mod moto;

/// A service that always answers 200, for the scenario's probe.
fn service() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    format!("http://127.0.0.1:{port}/health")
}

struct Aws {
    moto: moto::Moto,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    url: String,
}

impl Aws {
    fn new() -> Aws {
        Aws {
            moto: moto::Moto::start(),
            rt: tokio::runtime::Runtime::new().unwrap(),
            dir: tempfile::tempdir().unwrap(),
            url: service(),
        }
    }

    /// 2 opted-in, 1 opted-out and 1 untagged instance per zone.
    fn fleet(&self) -> moto::Fleet {
        self.rt.block_on(async {
            let ec2 = self.moto.ec2().await;
            moto::fleet(&ec2, 2, 1, 1).await
        })
    }

    fn states(&self, ids: &[String]) -> BTreeMap<String, String> {
        self.rt
            .block_on(async { moto::states(&self.moto.ec2().await, ids).await })
    }

    /// `simian ARGS`, reaching moto through the SDK's environment.
    fn simian(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(root())
            .arg("--state-dir")
            .arg(self.dir.path())
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("AWS_REGION", moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE");
        c
    }

    fn gorilla(&self, hold: &str, extra: &[&str]) -> Command {
        let service = format!("service_url={}", self.url);
        let hold = format!("hold={hold}");
        let mut c = self.simian(&["run", "scenarios/aws/chaos-gorilla.yaml"]);
        c.args([
            "--var",
            &service,
            "--var",
            "zone=us-east-1a",
            "--var",
            &hold,
        ])
        .args([
            "--var",
            "before=1s",
            "--var",
            "after=1s",
            "--var",
            "max_blast_radius=100%",
        ])
        .args(extra);
        c
    }

    fn run(&self, hold: &str, extra: &[&str]) -> Output {
        self.gorilla(hold, extra).output().unwrap()
    }

    fn spawn(&self, hold: &str, extra: &[&str]) -> Child {
        self.gorilla(hold, extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn all_in(states: &BTreeMap<String, String>, ids: &[String], state: &str) -> bool {
    ids.iter()
        .all(|id| states.get(id).map(String::as_str) == Some(state))
}

#[test]
fn the_zone_s_opted_in_instances_stop_and_start_again_and_nothing_else_changes() {
    let aws = Aws::new();
    let fleet = aws.fleet();
    let zone = fleet.opted_in["us-east-1a"].clone();
    let others: Vec<String> = fleet
        .all()
        .into_iter()
        .filter(|id| !zone.contains(id))
        .collect();

    let plan = aws
        .simian(&["plan", "scenarios/aws/chaos-gorilla.yaml"])
        .args([
            "--var",
            &format!("service_url={}", aws.url),
            "--var",
            "zone=us-east-1a",
        ])
        .output()
        .unwrap();
    assert_exit(&plan, 0);
    let p = stdout(&plan);
    // The blast radius is one zone of the region's opted-in fleet: 2 of 6, under the 40% guard.
    assert!(p.contains("2 of 6 opted-in"), "{p}");
    for id in &zone {
        assert!(p.contains(id.as_str()), "plan must name {id}:\n{p}");
    }
    assert!(
        !others.iter().any(|id| p.contains(id.as_str())),
        "plan names a non-target:\n{p}"
    );

    let child = aws.spawn("4s", &["--yes"]);
    let stopped = eventually(Duration::from_secs(30), || {
        all_in(&aws.states(&zone), &zone, "stopped")
    });
    let during = aws.states(&others);
    assert_eq!(exit_code_within(child, Duration::from_secs(60)), Some(0));
    assert!(stopped, "the zone's opted-in instances never stopped");
    assert!(
        all_in(&during, &others, "running"),
        "a non-target changed: {during:?}"
    );
    assert!(
        all_in(&aws.states(&zone), &zone, "running"),
        "the zone was not started again"
    );
    assert!(all_in(&aws.states(&others), &others, "running"));
}

#[test]
fn without_yes_a_cloud_run_refuses_and_changes_nothing() {
    let aws = Aws::new();
    let fleet = aws.fleet();
    let out = aws.run("1s", &[]);
    assert_exit(&out, 3);
    let e = stderr(&out);
    assert!(
        e.contains("zone-down act on a cloud account; nothing was injected"),
        "{e}"
    );
    assert!(e.contains("--yes"), "{e}");
    assert!(all_in(&aws.states(&fleet.all()), &fleet.all(), "running"));
}

#[test]
fn recover_starts_the_zone_again_after_a_sigkilled_run() {
    let aws = Aws::new();
    let fleet = aws.fleet();
    let zone = fleet.opted_in["us-east-1a"].clone();
    let journal = aws.dir.path().join("gorilla.jsonl");
    let j = journal.to_str().unwrap();
    let mut child = aws.spawn("5m", &["--yes", "--journal", j]);
    assert!(
        eventually(Duration::from_secs(30), || all_in(
            &aws.states(&zone),
            &zone,
            "stopped"
        )),
        "the zone never stopped"
    );
    child.kill().unwrap(); // SIGKILL: nothing reverts
    child.wait().unwrap();
    assert!(all_in(&aws.states(&zone), &zone, "stopped"));
    let out = aws.simian(&["recover", j]).output().unwrap();
    assert_exit(&out, 0);
    assert!(
        eventually(Duration::from_secs(30), || all_in(
            &aws.states(&zone),
            &zone,
            "running"
        )),
        "recover did not start the zone: {:?}",
        aws.states(&zone)
    );
    let again = aws.simian(&["recover", j]).output().unwrap();
    assert_exit(&again, 0);
}
