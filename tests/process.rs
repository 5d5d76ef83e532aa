//! The `process` fault on local processes that are not the lab's: by pattern, by pid file.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const EXPERIMENT: &str = r#"version: 1
name: local-process
steady_state:
  probes:
    ok: { command: { run: "true", interval: 100ms } }
  hypothesis: [ "ok.success_ratio >= 99%" ]
  before: 1s
  window: 1s
  after: 1s
method:
  - inject:
      name: victim
      process:
TARGET
  - wait: 2s
guards:
  max_duration: 1m
"#;

/// A `sleep` with a number no other test uses, detached so it is nobody's child here.
fn detached_sleep(secs: &str, pidfile: &std::path::Path) -> u32 {
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep {secs} >/dev/null 2>&1 & echo $! > {}",
            pidfile.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn processes_matching_a_pattern_are_stopped_then_continued() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.101", &dir.path().join("pid"));
    let f = dir.path().join("e.yaml");
    std::fs::write(
        &f,
        EXPERIMENT.replace(
            "TARGET",
            "        target: { pattern: '^sleep 2999\\.101$' }\n        action: stop",
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .env("SIMIAN_STATE_DIR", dir.path())
        .arg("run")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = eventually(Duration::from_secs(20), || proc_state(pid) == Some('T'));
    let out = crate::run::wait_with_timeout(&mut child, Duration::from_secs(30));
    let state = proc_state(pid);
    kill(pid);
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
    let first = detached_sleep("2999.202", &pidfile);
    let f = dir.path().join("e.yaml");
    let target = format!(
        "        target: {{ pidfile: '{p}' }}\n        action: kill\n        restart: 'sleep 2999.202 & echo $! > {p}'",
        p = pidfile.display()
    );
    std::fs::write(&f, EXPERIMENT.replace("TARGET", &target)).unwrap();
    let out = Command::new(BIN)
        .env("SIMIAN_STATE_DIR", dir.path())
        .arg("run")
        .arg(&f)
        .output()
        .unwrap();
    let second: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (s1, s2) = (proc_state(first), proc_state(second));
    kill(second);
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
    let pid = detached_sleep("2999.303", &dir.path().join("pid"));
    let f = dir.path().join("e.yaml");
    let yaml = EXPERIMENT.replace(
        "TARGET",
        "        target: { pattern: '^sleep 2999\\.303$' }",
    );
    std::fs::write(&f, &yaml).unwrap();
    let refused = Command::new(BIN)
        .env("SIMIAN_STATE_DIR", dir.path())
        .arg("run")
        .arg(&f)
        .output()
        .unwrap();
    let alive = proc_state(pid).is_some();
    std::fs::write(
        &f,
        yaml.replace(
            "  max_duration: 1m",
            "  max_duration: 1m\n  allow_irreversible: true",
        ),
    )
    .unwrap();
    let plan = Command::new(BIN)
        .env("SIMIAN_STATE_DIR", dir.path())
        .arg("plan")
        .arg(&f)
        .output()
        .unwrap();
    kill(pid);
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
