//! Game days run by people: `confirm` steps answered with `simian continue` (or refused
//! where nobody can answer), and webhooks told of the start, the abort and the verdict.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// A game day on a local `sleep` (stopped, then continued) with one `confirm` step.
fn game_day(dir: &Path, victim: &str, timeout: &str, notify: &str) -> PathBuf {
    let then = format!(
        "  - confirm: {{ message: \"victim stopped; go on?\", timeout: {timeout} }}\n  - wait: 1s\n"
    );
    stop_sleep(dir, "gameday", victim, &then, notify)
}

fn awaiting(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "awaiting"))
        .collect()
}

#[test]
fn a_confirm_step_waits_for_simian_continue_then_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.601");
    let f = game_day(dir.path(), "2999\\.601", "1m", "");
    let run = simian_in(dir.path())
        .args(["run", "--remote-confirm"])
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let asked = eventually(Duration::from_secs(20), || !awaiting(dir.path()).is_empty());
    let stopped_while_asking = proc_state(pid) == Some('T');
    // Nothing to confirm under another name.
    let wrong = simian_in(dir.path())
        .args(["continue", "no-such-run"])
        .output()
        .unwrap();
    let answer = simian_in(dir.path()).arg("continue").output().unwrap();
    let out = run.wait_with_output().unwrap();
    let state = proc_state(pid);
    sigkill(pid);
    assert!(asked, "the run never asked: {}", stderr(&out));
    assert!(
        stopped_while_asking,
        "the fault was not applied while the step waited"
    );
    assert_exit(&wrong, 3);
    assert!(
        stderr(&wrong).contains("is not waiting for an operator"),
        "{}",
        stderr(&wrong)
    );
    assert_exit(&answer, 0);
    assert!(
        stdout(&answer).contains("confirmed: victim stopped; go on?"),
        "{}",
        stdout(&answer)
    );
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("CONFIRM: victim stopped; go on?"), "{err}");
    assert!(err.contains("`simian continue "), "{err}");
    assert!(
        err.contains("with simian continue"),
        "who confirmed is shown: {err}"
    );
    assert!(state.is_some_and(|s| s != 'T'), "still stopped: {state:?}");
    assert!(awaiting(dir.path()).is_empty(), "the question is closed");
}

#[test]
fn an_unanswered_confirm_aborts_and_reverts() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.602");
    let f = game_day(dir.path(), "2999\\.602", "1s", "");
    let out = simian_in(dir.path())
        .args(["run", "--remote-confirm"])
        .arg(&f)
        .output()
        .unwrap();
    let state = proc_state(pid);
    sigkill(pid);
    assert_exit(&out, 2);
    assert!(
        stdout(&out).contains("no operator confirmed `victim stopped; go on?` within 1s"),
        "{}",
        stdout(&out)
    );
    assert!(state.is_some_and(|s| s != 'T'), "still stopped: {state:?}");
    assert!(awaiting(dir.path()).is_empty());
}

#[test]
fn without_a_terminal_confirm_steps_are_refused_unless_yes() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.603");
    let f = game_day(dir.path(), "2999\\.603", "1m", "");
    let refused = simian_in(dir.path()).arg("run").arg(&f).output().unwrap();
    let untouched = proc_state(pid);
    let yes = simian_in(dir.path())
        .args(["run", "--yes"])
        .arg(&f)
        .output()
        .unwrap();
    let state = proc_state(pid);
    sigkill(pid);
    assert_exit(&refused, 3);
    assert!(
        stderr(&refused).contains("not interactive"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert!(untouched.is_some_and(|s| s != 'T'), "refused, yet injected");
    assert_exit(&yes, 0);
    assert!(
        stderr(&yes).contains("confirmed by --yes"),
        "{}",
        stderr(&yes)
    );
    assert!(state.is_some_and(|s| s != 'T'));
}

/// Every POST body a webhook on 127.0.0.1 receives, with its path.
struct Hook {
    url: String,
    seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let (head, body) = read_request(&mut c);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                s.lock().unwrap().push((path, json));
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Hook { url, seen }
    }

    fn seen(&self, path: &str) -> Vec<serde_json::Value> {
        let all = self.seen.lock().unwrap();
        all.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

#[test]
fn webhooks_hear_the_start_the_abort_and_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start();
    let pid = detached_sleep("2999.604");
    let notify = format!(
        "notify:\n  - {{ url: \"{}/slack\", format: slack }}\n  - {{ url: \"{}/verdict-only\", on: [verdict] }}\n",
        hook.url, hook.url
    );
    let f = game_day(dir.path(), "2999\\.604", "1s", &notify);
    let out = simian_in(dir.path())
        .args(["run", "--remote-confirm", "--notify"])
        .arg(format!("{}/generic", hook.url))
        .arg(&f)
        .output()
        .unwrap();
    sigkill(pid);
    assert_exit(&out, 2);

    let generic = hook.seen("/generic");
    let events: Vec<&str> = generic
        .iter()
        .map(|b| b["simian"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["start", "abort", "verdict"], "{generic:?}");
    let verdict = &generic[2]["simian"];
    assert_eq!(verdict["experiment"], "gameday");
    assert_eq!(verdict["verdict"], "aborted");
    assert_eq!(verdict["exit_code"], 2);
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap()
            .contains("no operator confirmed"),
        "{verdict}"
    );
    assert!(
        verdict["journal"].as_str().unwrap().ends_with(".jsonl"),
        "{verdict}"
    );

    let slack = hook.seen("/slack");
    assert_eq!(slack.len(), 3, "{slack:?}");
    assert!(
        slack[1]["text"]
            .as_str()
            .unwrap()
            .contains("*gameday* is aborting"),
        "{slack:?}"
    );
    assert!(
        slack[2]["text"]
            .as_str()
            .unwrap()
            .contains("aborted (exit 2)"),
        "{slack:?}"
    );

    let only = hook.seen("/verdict-only");
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0]["simian"]["event"], "verdict");
}

#[test]
fn a_notify_flag_that_is_no_url_is_refused_before_anything() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.607");
    let f = game_day(dir.path(), "2999\\.607", "1m", "");
    let out = simian_in(dir.path())
        .args(["run", "--yes", "--notify", "hooks.slack.com/x"])
        .arg(&f)
        .output()
        .unwrap();
    let state = proc_state(pid);
    sigkill(pid);
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("is not an http(s) URL"),
        "{}",
        stderr(&out)
    );
    assert!(state.is_some_and(|s| s != 'T'), "refused, yet injected");
    assert!(
        !dir.path().join("runs").exists(),
        "a refused run left a journal"
    );
}

#[test]
fn a_dead_webhook_costs_a_warning_not_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pid = detached_sleep("2999.605");
    let f = game_day(dir.path(), "2999\\.605", "1m", "");
    let out = simian_in(dir.path())
        .args(["run", "--yes", "--notify"])
        .arg(format!("http://127.0.0.1:{port}/gone"))
        .arg(&f)
        .output()
        .unwrap();
    sigkill(pid);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("warning: cannot notify http://127.0.0.1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn enter_in_the_run_s_terminal_confirms() {
    // `script` (util-linux) gives the run a real pseudo-terminal; what we write to its
    // input is typed there.
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.606");
    let f = game_day(dir.path(), "2999\\.606", "1m", "");
    let mut run = Command::new("script")
        .args(["-qec", &format!("{BIN} run {}", f.display()), "/dev/null"])
        .env("SIMIAN_STATE_DIR", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run `script` (util-linux)");
    let asked = eventually(Duration::from_secs(20), || !awaiting(dir.path()).is_empty());
    run.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let out = run.wait_with_output().unwrap();
    let state = proc_state(pid);
    sigkill(pid);
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert!(asked, "the run never asked: {shown}");
    assert!(shown.contains("press Enter here"), "{shown}");
    assert!(shown.contains("at the terminal"), "{shown}");
    assert!(shown.contains("HELD (exit 0)"), "{shown}");
    assert!(state.is_some_and(|s| s != 'T'), "still stopped: {state:?}");
}
