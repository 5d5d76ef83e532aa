//! The HAProxy and webhook traffic shifters through the real binary: however a run ends
//! (success, SIGINT, SIGKILL then `simian recover`), the original split comes back exactly.

use std::io::Write;
use std::net::TcpListener;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::*;

#[path = "../crates/simian-injectors/tests/support/haproxy.rs"]
mod haproxy;

/// An evacuation of east into west through `via`, probed on `probe` (a TCP address).
fn kong(probe: &str, via: &str, every: &str) -> String {
    format!(
        r#"version: 1
name: kong
steady_state:
  probes:
    p: {{ tcp: {{ address: "{probe}", interval: 100ms }} }}
  hypothesis: [ p.success_ratio >= 99% ]
  before: 1s
  window: 1s
  after: 1s
method:
  - evacuate:
      name: kong
      from: us-east
      to: us-west
      steps: [50%, 100%]
      every: {every}
      hold: {every}
      via: {via}
"#
    )
}

/// Runs `file` in the background (its output discarded) with `--journal journal`.
fn start(lab: &tempfile::TempDir, file: &std::path::Path, journal: &str) -> Child {
    std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--state-dir")
        .arg(lab.path())
        .args(["run", "--no-guardian", "--journal", journal])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn simian(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--state-dir")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn haproxy_weights_come_back_after_success_sigint_and_sigkill_then_recover() {
    let h = haproxy::Haproxy::start();
    let original = [10, 10, 20];
    assert_eq!(h.weights(), original);
    let dir = tempfile::tempdir().unwrap();
    let via = format!(
        "{{ haproxy: {{ socket: \"{}\", backend: app, from_servers: [east1, east2], to_servers: [west1] }} }}",
        h.socket()
    );
    let probe = format!("127.0.0.1:{}", h.frontend);

    let quick = dir.path().join("quick.yaml");
    std::fs::write(&quick, kong(&probe, &via, "1s")).unwrap();
    let out = simian(&dir, &["run", quick.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("kong: 100% of the traffic moved"),
        "{}",
        stderr(&out)
    );
    assert_eq!(h.weights(), original, "after success");

    let slow = dir.path().join("slow.yaml");
    std::fs::write(&slow, kong(&probe, &via, "60s")).unwrap();
    let moved = || h.weights() != original;
    let run = start(&dir, &slow, dir.path().join("int.jsonl").to_str().unwrap());
    assert!(
        eventually(Duration::from_secs(20), moved),
        "the ramp never started"
    );
    assert_eq!(h.weights(), [5, 5, 20], "50%: east halved, west kept");
    kill(Pid::from_raw(run.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(exit_code_within(run, Duration::from_secs(30)), Some(2));
    assert_eq!(h.weights(), original, "after SIGINT");

    let journal = dir.path().join("kill.jsonl");
    let j = journal.to_str().unwrap();
    let mut run = start(&dir, &slow, j);
    assert!(
        eventually(Duration::from_secs(20), moved),
        "the ramp never started"
    );
    run.kill().unwrap(); // SIGKILL: nothing reverts
    run.wait().unwrap();
    assert_eq!(h.weights(), [5, 5, 20], "a SIGKILLed run reverted nothing");
    assert_exit(&simian(&dir, &["recover", j]), 0);
    assert_eq!(h.weights(), original, "after recover");
}

/// A traffic tool's steering state behind a webhook, on 127.0.0.1.
struct Tool {
    port: u16,
    state: Arc<Mutex<String>>,
}

impl Tool {
    /// Serves `GET /steer` (the state) and `PUT /steer` (replace it), one request per
    /// connection, on a thread that lives as long as the test process.
    fn start(initial: &str) -> Tool {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(initial.to_string()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let (head, body) = read_request(&mut c);
                let reply = if head.starts_with("PUT") {
                    *st.lock().unwrap() = body;
                    String::new()
                } else {
                    st.lock().unwrap().clone()
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Tool { port, state }
    }

    fn state(&self) -> String {
        self.state.lock().unwrap().clone()
    }
}

#[test]
fn a_webhook_gets_its_saved_state_back_after_success_and_sigkill_then_recover() {
    let original = r#"{"east": 100, "west": 100, "note": "hand-tuned"}"#;
    let tool = Tool::start(original);
    let url = format!("http://127.0.0.1:{}/steer", tool.port);
    let via = format!(
        r#"{{ http: {{ set: {{ method: PUT, url: "{url}", body: '{{"east": ${{percent}}, "from": "${{from}}"}}' }}, get: {{ url: "{url}" }}, restore: {{ method: PUT, url: "{url}", body: "${{state}}" }} }} }}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let probe = format!("127.0.0.1:{}", tool.port);

    let quick = dir.path().join("quick.yaml");
    std::fs::write(&quick, kong(&probe, &via, "1s")).unwrap();
    let out = simian(&dir, &["run", quick.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert_eq!(tool.state(), original, "after success");

    let slow = dir.path().join("slow.yaml");
    std::fs::write(&slow, kong(&probe, &via, "60s")).unwrap();
    let journal = dir.path().join("kill.jsonl");
    let j = journal.to_str().unwrap();
    let mut run = start(&dir, &slow, j);
    assert!(
        eventually(Duration::from_secs(20), || tool.state() != original),
        "the ramp never started"
    );
    assert_eq!(tool.state(), r#"{"east": 50, "from": "us-east"}"#);
    run.kill().unwrap();
    run.wait().unwrap();
    assert_exit(&simian(&dir, &["recover", j]), 0);
    assert_eq!(tool.state(), original, "after recover");
}
