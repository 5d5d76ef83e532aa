//! After SIGKILL of the runner, `simian recover` puts everything back from the journal.

use std::time::Duration;

use crate::common::*;

fn sigkill_mid_method_then_recover(action: &str, zone: &str) {
    let lab = Lab::up();
    let yaml = gorilla(zone, &["users.success_ratio >= 99%"], &[], "90s").replace(
        "        target: { lab: { zone",
        &format!("        action: {action}\n        target: {{ lab: {{ zone"),
    );
    let f = lab.experiment("kill.yaml", &yaml);
    let journal = lab.state_dir().join("run.jsonl");
    let pids = lab.zone_pids(zone);
    let (f, j) = (f.to_str().unwrap(), journal.to_str().unwrap());
    let mut child = lab.spawn_quiet(["run", f, "--journal", j]);
    let hit = |p: &u32| match action {
        "stop" => proc_state(*p) == Some('T'),
        _ => proc_state(*p).is_none(),
    };
    assert!(
        eventually(Duration::from_secs(30), || pids.iter().all(hit)),
        "the fault never landed"
    );
    child.kill().unwrap(); // SIGKILL: the runner cannot revert anything
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        pids.iter().all(hit),
        "something reverted the fault without recover"
    );

    let out = lab.simian().arg("recover").arg(&journal).output().unwrap();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("reverted zone-down"),
        "{}",
        stdout(&out)
    );
    assert!(
        lab.zone_serving(zone),
        "zone {zone} not serving after recover"
    );
    for p in lab.all_pids() {
        assert_ne!(proc_state(p), Some('T'), "pid {p} still stopped");
    }

    // A second recover finds nothing to do and breaks nothing.
    let again = lab.simian().arg("recover").arg(&journal).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing to revert"),
        "{}",
        stdout(&again)
    );
    assert!(lab.zone_serving(zone));
}

#[test]
fn recover_after_sigkill_restarts_a_killed_zone() {
    sigkill_mid_method_then_recover("kill", "us-east-c");
}

#[test]
fn recover_after_sigkill_resumes_a_stopped_zone() {
    sigkill_mid_method_then_recover("stop", "us-west-a");
}

#[test]
fn recover_rejects_a_file_that_is_not_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.jsonl");
    std::fs::write(&f, "hello\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("recover")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("is not a simian journal"),
        "{}",
        stderr(&out)
    );
}
