//! `simian run --leashed`: targets resolved and probes run, every action logged at the
//! time it would be taken, and nothing touched: a local `sleep` is never stopped.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// The `leashed` events of a JSON report: (at_ms, would, fault).
fn would(report: &serde_json::Value) -> Vec<(u64, String, String)> {
    report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"]["event"] == "leashed")
        .map(|e| {
            (
                e["at_ms"].as_u64().unwrap(),
                e["kind"]["would"].as_str().unwrap().to_string(),
                e["kind"]["fault"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_leashed_run_logs_what_it_would_do_and_never_stops_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.404");
    let f = stop_sleep(
        dir.path(),
        "leashed-process",
        "2999\\.404",
        "  - wait: 2s\n",
        "",
    );
    let (json, journal) = (dir.path().join("out.json"), dir.path().join("j.jsonl"));
    let mut child = simian_in(dir.path())
        .arg("run")
        .arg("--leashed")
        .arg(&f)
        .arg("--json")
        .arg(&json)
        .arg("--journal")
        .arg(&journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Poll the victim's state all through the run: it must never be stopped.
    let mut states = Vec::new();
    let ended = eventually(Duration::from_secs(30), || {
        states.extend(proc_state(pid));
        child.try_wait().unwrap().is_some()
    });
    let out = crate::run::wait_with_timeout(&mut child, Duration::from_secs(5));
    let after = proc_state(pid);
    sigkill(pid);
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(ended, "the run did not end");
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    assert!(states.len() > 10, "polled only {} times", states.len());
    assert!(
        !states.contains(&'T') && after.is_some_and(|s| s != 'T'),
        "the process was stopped: {states:?} {after:?}"
    );
    for line in [
        "s] LEASHED would inject victim",
        "s] LEASHED would revert victim",
    ] {
        assert!(se.contains(line), "no `{line}` in:\n{se}");
    }
    let all = format!("{so}{se}");
    assert!(all.contains("LEASHED: nothing was injected"), "{all}");
    assert!(all.contains("would-be actions (none taken)"), "{all}");
    assert!(
        all.contains(&pid.to_string()),
        "the target was resolved: {all}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["leashed"], true);
    assert_eq!(report["verdict"], "held");
    let w = would(&report);
    assert_eq!(
        w.iter()
            .map(|(_, what, fault)| (what.as_str(), fault.as_str()))
            .collect::<Vec<_>>(),
        [("inject", "victim"), ("revert", "victim")],
        "{w:?}"
    );
    let held = w[1].0 - w[0].0;
    assert!((2000..2500).contains(&held), "would revert {held}ms later");
    assert!(w[0].0 >= 1000, "would inject after the 1s baseline: {w:?}");
    assert!(report["faults"][0]["injected_ms"].is_null());

    let rec = simian_in(dir.path())
        .arg("recover")
        .arg(&journal)
        .output()
        .unwrap();
    assert_eq!(rec.status.code(), Some(0), "{}", stderr(&rec));
    assert!(
        stdout(&rec).contains("nothing to revert"),
        "{}{}",
        stdout(&rec),
        stderr(&rec)
    );
}
