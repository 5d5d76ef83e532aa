//! AWS backends through the real binary against a moto server on 127.0.0.1 (started per
//! test), found by the SDK's standard environment alone. `scenarios/aws/`: Chaos Gorilla
//! stops exactly the opted-in instances of one zone and starts them again; split-brain
//! adds DENY entries to both sides' network ACLs and removes exactly those; Chaos Kong
//! moves Route53 weights step by step, stops on a CloudWatch alarm, and restores them.
//! Each refuses without `--yes`, and `recover` undoes a SIGKILLed run.

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

    // The same for a network-ACL cut and a Route53 evacuation.
    let vpcs = aws.rt.block_on(moto::two_vpcs(&aws.moto));
    let zone = aws.rt.block_on(moto::weighted_zone(&aws.moto));
    aws.alarm("OK");
    let (acls, weights) = (aws.acls(&vpcs), aws.weights(&zone));
    let split = aws.split_brain("1s", &[]).output().unwrap();
    assert_exit(&split, 3);
    assert!(stderr(&split).contains("partition act on a cloud account"));
    let kong = aws.kong(&zone, "1s", "1s", &[]).output().unwrap();
    assert_exit(&kong, 3);
    assert!(stderr(&kong).contains("kong act on a cloud account"));
    assert_eq!(aws.acls(&vpcs), acls);
    assert_eq!(aws.weights(&zone), weights);
}

#[test]
fn recover_starts_the_zone_again_after_a_sigkilled_run() {
    let aws = Aws::new();
    let fleet = aws.fleet();
    let zone = fleet.opted_in["us-east-1a"].clone();
    let journal = aws.dir.path().join("gorilla.jsonl");
    let j = journal.to_str().unwrap();
    let mut child = aws.spawn("5m", &["--yes", "--no-guardian", "--journal", j]);
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

/// Every entry of every ACL of both VPCs.
type Entries = Vec<(String, i32, bool, String, String)>;

impl Aws {
    fn acls(&self, vpcs: &(moto::Vpc, moto::Vpc)) -> (Entries, Entries) {
        self.rt.block_on(async {
            (
                moto::acl_entries(&self.moto, &vpcs.0.region, &vpcs.0.id).await,
                moto::acl_entries(&self.moto, &vpcs.1.region, &vpcs.1.id).await,
            )
        })
    }

    fn split_brain(&self, hold: &str, extra: &[&str]) -> Command {
        let (service, hold) = (format!("service_url={}", self.url), format!("hold={hold}"));
        let mut c = self.simian(&["run", "scenarios/aws/split-brain.yaml"]);
        c.args(["--var", &service, "--var", &hold])
            .args(["--var", "before=1s", "--var", "after=1s"])
            .args(extra);
        c
    }

    fn weights(&self, zone: &moto::Zone) -> BTreeMap<String, i64> {
        self.rt
            .block_on(moto::weights(&self.moto, &zone.id, &zone.name))
    }

    fn alarm(&self, state: &str) {
        self.rt.block_on(moto::alarm(&self.moto, "api-5xx", state));
    }

    fn kong(&self, zone: &moto::Zone, every: &str, hold: &str, extra: &[&str]) -> Command {
        let vars = [
            format!("service_url={}", self.url),
            format!("hosted_zone={}", zone.id),
            format!("record={}", zone.name),
            "alarm=api-5xx".to_string(),
            format!("every={every}"),
            format!("hold={hold}"),
            "before=1s".into(),
            "window=1s".into(),
            "after=1s".into(),
            "alarm_every=250ms".into(),
            "recovers_within=10s".into(),
        ];
        let mut c = self.simian(&["run", "scenarios/aws/chaos-kong.yaml"]);
        for v in &vars {
            c.args(["--var", v]);
        }
        c.args(extra);
        c
    }
}

/// The deny entries for `cidr` among `entries`.
fn denies(entries: &Entries, cidr: &str) -> Vec<(String, i32, bool)> {
    entries
        .iter()
        .filter(|(_, _, _, action, c)| action == "deny" && c == cidr)
        .map(|(acl, n, egress, _, _)| (acl.clone(), *n, *egress))
        .collect()
}

#[test]
fn split_brain_denies_each_side_in_the_other_s_acls_and_removes_exactly_those() {
    let aws = Aws::new();
    let vpcs = aws.rt.block_on(moto::two_vpcs(&aws.moto));
    let before = aws.acls(&vpcs);
    let (east, west) = (&vpcs.0, &vpcs.1);

    let plan = aws
        .simian(&["plan", "scenarios/aws/split-brain.yaml"])
        .args(["--var", &format!("service_url={}", aws.url)])
        .output()
        .unwrap();
    assert_exit(&plan, 0);
    let p = stdout(&plan);
    for acl in east.acl_ids.iter().chain(&west.acl_ids) {
        assert!(p.contains(acl.as_str()), "plan must name {acl}:\n{p}");
    }
    assert_eq!(aws.acls(&vpcs), before, "plan changed an ACL");

    let child = aws
        .split_brain("4s", &["--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut during = None;
    let cut = eventually(Duration::from_secs(30), || {
        let now = aws.acls(&vpcs);
        let ok = !denies(&now.0, &west.cidr).is_empty() && !denies(&now.1, &east.cidr).is_empty();
        during = Some(now);
        ok
    });
    assert_eq!(exit_code_within(child, Duration::from_secs(60)), Some(0));
    assert!(cut, "no deny entries appeared: {during:?}");
    let during = during.unwrap();
    // Every ACL of each VPC denies the other side, both ways, before its own rule 100.
    for (entries, vpc, other) in [(&during.0, east, west), (&during.1, west, east)] {
        let d = denies(entries, &other.cidr);
        for acl in &vpc.acl_ids {
            for egress in [false, true] {
                assert!(
                    d.iter()
                        .any(|(a, n, e)| a == acl && *e == egress && *n < 100),
                    "{acl} egress={egress} has no deny for {}: {d:?}",
                    other.cidr
                );
            }
        }
    }
    assert_eq!(
        aws.acls(&vpcs),
        before,
        "the entries were not removed exactly"
    );
}

#[test]
fn recover_removes_the_acl_entries_of_a_sigkilled_split_brain() {
    let aws = Aws::new();
    let vpcs = aws.rt.block_on(moto::two_vpcs(&aws.moto));
    let before = aws.acls(&vpcs);
    let journal = aws.dir.path().join("split.jsonl");
    let j = journal.to_str().unwrap();
    let mut child = aws
        .split_brain("5m", &["--yes", "--no-guardian", "--journal", j])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            let now = aws.acls(&vpcs);
            !denies(&now.0, &vpcs.1.cidr).is_empty() && !denies(&now.1, &vpcs.0.cidr).is_empty()
        }),
        "the cut never happened"
    );
    child.kill().unwrap(); // SIGKILL: nothing reverts
    child.wait().unwrap();
    assert_ne!(aws.acls(&vpcs), before);
    let out = aws.simian(&["recover", j]).output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(aws.acls(&vpcs), before, "recover left entries behind");
    let again = aws.simian(&["recover", j]).output().unwrap();
    assert_exit(&again, 0);
    assert_eq!(aws.acls(&vpcs), before);
}

#[test]
fn chaos_kong_moves_route53_weights_step_by_step_and_puts_them_back() {
    let aws = Aws::new();
    let zone = aws.rt.block_on(moto::weighted_zone(&aws.moto));
    aws.alarm("OK");
    let original = aws.weights(&zone);
    assert_eq!(original["us-east"], 100);

    let mut child = aws
        .kong(&zone, "1s", "1s", &["--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Every distinct weight of us-east seen while the ramp runs.
    let mut seen = std::collections::BTreeSet::new();
    let _ = eventually(Duration::from_secs(60), || {
        let w = aws.weights(&zone);
        seen.insert(w["us-east"]);
        assert_eq!(w["canary"], original["canary"], "another set changed");
        assert_eq!(
            w["us-east"] + w["us-west"],
            original["us-east"] + original["us-west"],
            "weight is moved, not lost"
        );
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{out}");
    assert!(
        seen.contains(&0),
        "us-east was never fully evacuated: {seen:?}"
    );
    assert!(seen.len() >= 3, "no intermediate steps seen: {seen:?}");
    assert_eq!(aws.weights(&zone), original, "weights not restored");
}

#[test]
fn a_firing_alarm_stops_the_evacuation_and_restores_the_weights() {
    let aws = Aws::new();
    let zone = aws.rt.block_on(moto::weighted_zone(&aws.moto));
    aws.alarm("OK");
    let original = aws.weights(&zone);
    let mut child = aws
        .kong(&zone, "2s", "5m", &["--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || aws.weights(&zone)["us-east"]
            < original["us-east"]),
        "the ramp never started"
    );
    aws.alarm("ALARM");
    let mut stdout = child.stdout.take().unwrap();
    let code = exit_code_within(child, Duration::from_secs(60));
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    assert_eq!(
        code,
        Some(2),
        "the alarm did not stop the run (exit 2): {out}"
    );
    assert!(
        out.contains("alarm.value"),
        "the report names the stop condition:\n{out}"
    );
    assert_eq!(aws.weights(&zone), original, "weights not restored");
}

#[test]
fn recover_restores_the_weights_of_a_sigkilled_evacuation() {
    let aws = Aws::new();
    let zone = aws.rt.block_on(moto::weighted_zone(&aws.moto));
    aws.alarm("OK");
    let original = aws.weights(&zone);
    let journal = aws.dir.path().join("kong.jsonl");
    let j = journal.to_str().unwrap();
    let mut child = aws
        .kong(
            &zone,
            "1s",
            "5m",
            &["--yes", "--no-guardian", "--journal", j],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || aws.weights(&zone)["us-east"]
            == 0),
        "the ramp never reached 100%"
    );
    child.kill().unwrap(); // SIGKILL: nothing reverts
    child.wait().unwrap();
    assert_ne!(aws.weights(&zone), original);
    let out = aws.simian(&["recover", j]).output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(
        aws.weights(&zone),
        original,
        "recover did not restore the weights"
    );
    let again = aws.simian(&["recover", j]).output().unwrap();
    assert_exit(&again, 0);
    assert_eq!(aws.weights(&zone), original);
}
