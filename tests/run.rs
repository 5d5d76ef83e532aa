//! `simian run` end to end against a real lab: verdicts, exit codes, reports, signals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn chaos_gorilla_scenario_holds_and_the_zone_comes_back() {
    let lab = Lab::up();
    let before = lab.zone_pids("us-east-a");
    let out = lab
        .simian()
        .args([
            "run",
            "scenarios/chaos-gorilla.yaml",
            "--var",
            "hold=3s",
            "--var",
            "before=2s",
            "--var",
            "after=2s",
            "--var",
            "rate=50",
        ])
        .args(["--junit"])
        .arg(lab.state_dir().join("junit.xml"))
        .args(["--json"])
        .arg(lab.state_dir().join("run.json"))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("chaos-gorilla — HELD (exit 0)"),
        "{}",
        stdout(&out)
    );
    // The zone was really killed (new pids) and is serving again.
    let after = lab.zone_pids("us-east-a");
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "zone pids unchanged: {before:?} {after:?}"
    );
    assert!(lab.zone_serving("us-east-a"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.state_dir().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "held");
    assert_eq!(
        report["faults"][0]["plan"]["targets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let junit = std::fs::read_to_string(lab.state_dir().join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(
        junit.contains("name=\"during: users.p99 &lt; 250ms\""),
        "{junit}"
    );
}

#[test]
fn a_hypothesis_too_strict_for_a_zone_loss_deviates() {
    let lab = Lab::up();
    let f = lab.experiment(
        "strict.yaml",
        &gorilla(
            "us-east-a",
            &["users.success_ratio >= 99%", "zone_a.success_ratio >= 99%"],
            &[],
            "3s",
        ),
    );
    let junit = lab.state_dir().join("junit.xml");
    let summary = lab.state_dir().join("summary.md");
    let step_summary = lab.state_dir().join("github-step-summary.md");
    std::fs::write(&step_summary, "earlier step\n").unwrap();
    let out = lab
        .simian()
        .arg("run")
        .arg(&f)
        .arg("--junit")
        .arg(&junit)
        .arg("--summary")
        .arg(&summary)
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let s = stdout(&out);
    assert!(s.contains("DEVIATED"), "{s}");
    assert!(s.contains("✘ during  zone_a.success_ratio >= 99%"), "{s}");
    assert!(s.contains("✔ after   zone_a.success_ratio >= 99%"), "{s}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("hypothesis breached"), "{xml}");
    // A real JUnit consumer reads the same verdict: some cases failed, none errored.
    let (tests, failures, errors) = junit_counts(&junit);
    assert!(
        tests >= 4 && failures >= 1 && errors == 0,
        "{tests} {failures} {errors}\n{xml}"
    );

    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("### ❌ test-gorilla: deviated (exit 1)"),
        "{md}"
    );
    assert!(
        md.contains("| ❌ | during | `zone_a.success_ratio >= 99%` |"),
        "{md}"
    );
    assert!(
        md.contains("| ✅ | after | `zone_a.success_ratio >= 99%` |"),
        "{md}"
    );
    let gh = std::fs::read_to_string(&step_summary).unwrap();
    assert_eq!(
        gh,
        format!("earlier step\n{md}\n"),
        "appended, not overwritten"
    );
    assert!(lab.zone_serving("us-east-a"));
}

#[test]
fn a_tripped_stop_condition_aborts_and_brings_the_zone_back() {
    let lab = Lab::up();
    let f = lab.experiment(
        "stop.yaml",
        &gorilla(
            "us-east-a",
            &["users.success_ratio >= 99%"],
            &["zone_a.success_ratio < 50%"],
            "60s",
        ),
    );
    let json = lab.state_dir().join("run.json");
    let started = Instant::now();
    let out = lab
        .simian()
        .arg("run")
        .arg(&f)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_exit(&out, 2);
    // It stopped long before the 60s hold.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stdout(&out).contains("stop condition `zone_a.success_ratio < 50%` tripped"),
        "{}",
        stdout(&out)
    );
    assert!(lab.zone_serving("us-east-a"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(r["verdict"], "aborted");
    let (d, rv) = (
        r["stop"]["detected_ms"].as_u64().unwrap(),
        r["stop"]["reverted_ms"].as_u64().unwrap(),
    );
    assert!(rv >= d && rv - d < 5000, "revert took {}ms", rv - d);
}

fn a_signal_mid_method_reverts_and_exits_promptly(signal: nix::sys::signal::Signal, zone: &str) {
    let lab = Lab::up();
    let f = lab.experiment(
        "long.yaml",
        &gorilla(zone, &["users.success_ratio >= 99%"], &[], "90s"),
    );
    let pids = lab.zone_pids(zone);
    let mut child = lab
        .simian()
        .arg("run")
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || pids
            .iter()
            .all(|p| proc_state(*p).is_none())),
        "zone never killed"
    );
    let sent = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let out = wait_with_timeout(&mut child, Duration::from_secs(20));
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        sent.elapsed()
    );
    assert_exit(&out, 2);
    assert!(
        stdout(&out).contains(&format!("{signal} received")),
        "{}",
        stdout(&out)
    );
    assert!(lab.zone_serving(zone));
}

#[test]
fn sigint_mid_method_reverts_and_exits_promptly() {
    a_signal_mid_method_reverts_and_exits_promptly(nix::sys::signal::Signal::SIGINT, "us-east-b");
}

#[test]
fn sigterm_mid_method_reverts_and_exits_promptly() {
    a_signal_mid_method_reverts_and_exits_promptly(nix::sys::signal::Signal::SIGTERM, "us-west-c");
}

#[test]
fn an_unsteady_system_is_not_run_and_nothing_is_injected() {
    let lab = Lab::up();
    let pids = lab.all_pids();
    let f = lab.experiment(
        "unsteady.yaml",
        &gorilla("us-east-a", &["users.p50 < 1us"], &[], "3s"),
    );
    let out = lab.simian().arg("run").arg(&f).output().unwrap();
    assert_exit(&out, 3);
    assert!(
        stdout(&out).contains("not steady before the method"),
        "{}",
        stdout(&out)
    );
    assert_eq!(lab.all_pids(), pids);
    assert!(pids
        .iter()
        .all(|p| proc_state(*p).is_some_and(|s| s != 'T')));
}

#[test]
fn run_lab_starts_and_removes_a_throwaway_lab() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(root())
        .env("SIMIAN_STATE_DIR", dir.path())
        .args(["run", "--lab", "scenarios/chaos-gorilla.yaml", "--quiet"])
        .args([
            "--var",
            "hold=2s",
            "--var",
            "before=2s",
            "--var",
            "after=2s",
            "--var",
            "rate=30",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        !dir.path().join("lab/state.json").exists(),
        "throwaway lab left behind"
    );
}

pub fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::Output {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let mut out = std::process::Output {
        status: child.wait().unwrap(),
        stdout: vec![],
        stderr: vec![],
    };
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out.stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut out.stderr);
    }
    out
}
