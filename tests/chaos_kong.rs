//! Chaos Kong on the lab: `scenarios/chaos-kong.yaml` ramps us-east's users into us-west
//! through the global router's steering, each step gated; a region that cannot take the
//! load stops the ramp; every ending restores the exact original split.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::*;

/// The scenario, shortened.
const SHORT: [&str; 10] = [
    "--var",
    "every=2s",
    "--var",
    "hold=2s",
    "--var",
    "before=3s",
    "--var",
    "window=2s",
    "--var",
    "after=2s",
];

fn run_short(lab: &Lab) -> std::process::Output {
    lab.simian()
        .args(["run", "scenarios/chaos-kong.yaml"])
        .args(SHORT)
        .output()
        .unwrap()
}

fn steering(lab: &Lab, from: &str) -> String {
    let global = lab.state()["global"].as_str().unwrap().to_string();
    let (status, body) = http("GET", &format!("{global}/steering/{from}"), None);
    assert_eq!(status, 200, "{body}");
    body.trim().to_string()
}

fn steer(lab: &Lab, from: &str, body: &str) {
    let global = lab.state()["global"].as_str().unwrap().to_string();
    let (status, answer) = http("PUT", &format!("{global}/steering/{from}"), Some(body));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn the_scenario_ramps_gated_holds_comes_back_and_recovers() {
    let lab = Lab::up();
    let before = steering(&lab, "us-east");
    let out = run_short(&lab);
    assert_exit(&out, 0);
    let (o, e) = (stdout(&out), stderr(&out));
    for step in ["10%", "25%", "50%", "75%"] {
        assert!(
            e.contains(&format!(
                "gate before kong {}: the hypothesis holds",
                next(step)
            )),
            "{e}"
        );
    }
    assert!(e.contains("kong: 100% of the traffic moved; for 2s"), "{e}");
    assert!(o.contains("✔ after   recovers within 30s"), "{o}");
    assert!(o.contains("time to recover: "), "{o}");
    assert_eq!(
        steering(&lab, "us-east"),
        before,
        "the split is back as it was"
    );
}

/// The step after `s` in the scenario's ramp.
fn next(s: &str) -> &'static str {
    match s {
        "10%" => "25%",
        "25%" => "50%",
        "50%" => "75%",
        _ => "100%",
    }
}

#[test]
fn a_region_that_cannot_take_the_load_stops_the_ramp_and_gets_its_traffic_back() {
    // 100 users/s split 50/50: us-west carries 50/s, 75/s at the 50% step; it takes 70/s.
    let lab = Lab::up_with(&["--capacity", "us-west=70"]);
    let out = run_short(&lab);
    assert_exit(&out, 2);
    let (o, e) = (stdout(&out), stderr(&out));
    // Which gate fails depends on how the random geo split falls; the one that does
    // must stop the ramp: no step past it, traffic back.
    let reason = o
        .lines()
        .find_map(|l| l.strip_prefix("  reason: the gate before step "))
        .unwrap_or_else(|| panic!("no failing gate in\n{o}"));
    // The overloaded region sheds requests; the rate may fall below its bound too.
    assert!(
        reason.contains("failed: ") && reason.contains("sps.success_ratio >= 99% (measured"),
        "{reason}"
    );
    let share = reason.split(['(', ')']).nth(1).unwrap();
    assert!(
        !e.contains(&format!("kong: {share} of the traffic moved")),
        "the ramp went on to {share}:\n{e}"
    );
    assert!(e.contains("reverted kong"), "{e}");
    assert_eq!(
        steering(&lab, "us-east"),
        r#"{"to":null,"percent":0}"#,
        "traffic back where it started"
    );
}

#[test]
fn sigint_and_sigkill_then_recover_restore_the_exact_original_split() {
    let lab = Lab::up();
    let original = r#"{"to":"us-west","percent":5}"#;
    steer(&lab, "us-east", original);
    assert_eq!(steering(&lab, "us-east"), original);
    let moved = || !steering(&lab, "us-east").contains(r#""percent":5}"#);

    let run = lab.spawn_quiet(["run", "scenarios/chaos-kong.yaml", "--var", "every=30s"]);
    assert!(
        eventually(Duration::from_secs(30), moved),
        "the ramp never started"
    );
    kill(Pid::from_raw(run.id() as i32), Signal::SIGINT).unwrap();
    let status = exit_code_within(run, Duration::from_secs(30));
    assert_eq!(status, Some(2));
    assert_eq!(
        steering(&lab, "us-east"),
        original,
        "SIGINT restores the split"
    );

    let journal = lab.state_dir().join("kong.jsonl");
    let j = journal.to_str().unwrap();
    let mut run = lab.spawn_quiet([
        "run",
        "scenarios/chaos-kong.yaml",
        "--var",
        "every=30s",
        "--journal",
        j,
    ]);
    assert!(
        eventually(Duration::from_secs(30), moved),
        "the ramp never started"
    );
    run.kill().unwrap(); // SIGKILL: nothing reverts
    run.wait().unwrap();
    assert!(moved(), "a SIGKILLed run cannot have restored anything");
    let out = lab.simian().args(["recover", j]).output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(
        steering(&lab, "us-east"),
        original,
        "recover restores the split"
    );
    let again = lab.simian().args(["recover", j]).output().unwrap();
    assert_exit(&again, 0);
    assert_eq!(steering(&lab, "us-east"), original);
}
