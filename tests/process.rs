//! The `process` fault on local processes that are not the lab's: by pattern, by pid file.

use std::time::Duration;

use crate::common::*;

#[test]
fn processes_matching_a_pattern_are_stopped_then_continued() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.101");
    let f = stop_sleep(
        dir.path(),
        "local-process",
        "2999\\.101",
        "  - wait: 2s\n",
        "",
    );
    let mut child = simian_in(dir.path())
        .arg("run")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = eventually(Duration::from_secs(20), || proc_state(pid) == Some('T'));
    let out = crate::run::wait_with_timeout(&mut child, Duration::from_secs(30));
    let state = proc_state(pid);
    sigkill(pid);
    assert!(stopped, "the matching process was never stopped");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        state.is_some_and(|s| s != 'T'),
        "still stopped after the run: {state:?}"
    );
}

#[test]
fn a_killed_process_is_brought_back_by_its_restart_command() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let first = detached_sleep("2999.202");
    std::fs::write(&pidfile, first.to_string()).unwrap();
    let fault = format!(
        "{{ target: {{ pidfile: '{p}' }}, action: kill, restart: 'sleep 2999.202 & echo $! > {p}' }}",
        p = pidfile.display()
    );
    let f = process_experiment(dir.path(), "local-process", &fault, "  - wait: 2s\n", "");
    let out = simian_in(dir.path()).arg("run").arg(&f).output().unwrap();
    let second: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (s1, s2) = (proc_state(first), proc_state(second));
    sigkill(second);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(s1.is_none(), "the first process was not killed");
    assert_ne!(first, second, "the restart command did not run");
    assert!(
        s2.is_some_and(|s| s != 'Z'),
        "the restarted process is not running"
    );
}

#[test]
fn killing_what_nothing_restarts_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.303");
    let fault = "{ target: { pattern: '^sleep 2999\\.303$' } }";
    let f = process_experiment(dir.path(), "local-process", fault, "  - wait: 2s\n", "");
    let yaml = std::fs::read_to_string(&f).unwrap();
    let refused = simian_in(dir.path()).arg("run").arg(&f).output().unwrap();
    let alive = proc_state(pid).is_some();
    std::fs::write(
        &f,
        yaml.replace(
            "  max_duration: 10m",
            "  max_duration: 10m\n  allow_irreversible: true",
        ),
    )
    .unwrap();
    let plan = simian_in(dir.path()).arg("plan").arg(&f).output().unwrap();
    sigkill(pid);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        stderr(&refused).contains("cannot be undone"),
        "{}",
        stderr(&refused)
    );
    assert!(alive, "a refused run killed the process");
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("[IRREVERSIBLE]"),
        "{}",
        stdout(&plan)
    );
}
