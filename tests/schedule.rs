//! `simian schedule` and `simian history`: a due run lands in its dated dir with every
//! report, the lock and the kill switch keep runs from starting, `--dry-run` says why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// No lab: a `command` probe and a `wait`.
const TINY: &str = r#"version: 1
name: tiny
steady_state:
  probes:
    ok: { command: { run: "true", interval: 100ms } }
  hypothesis: [ "ok.success_ratio >= 99%" ]
  before: 500ms
  window: 500ms
  after: 500ms
method:
  - wait: 1s
guards:
  max_duration: 1m
"#;

/// A temp dir with the tiny experiment, a schedule running it every minute, a state dir.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tiny.yaml"), TINY).unwrap();
        std::fs::write(
            dir.path().join("game-days.yaml"),
            format!(
                "version: 1\noutput: game-days\n{extra}experiments:\n  - file: tiny.yaml\n    cron: \"* * * * *\"\n"
            ),
        )
        .unwrap();
        Setup { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn output(&self) -> PathBuf {
        self.dir.path().join("game-days")
    }

    fn simian(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_remove("SIMIAN_KILL_SWITCH")
            .arg("--state-dir")
            .arg(self.state())
            .args(args);
        c
    }

    fn once(&self) -> Output {
        self.simian(&["schedule", "game-days.yaml", "--once"])
            .output()
            .unwrap()
    }

    /// Every run dir: OUTPUT/DATE/HHMMSS-NAME.
    fn run_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(days) = std::fs::read_dir(self.output()) else {
            return out;
        };
        for day in days {
            for run in std::fs::read_dir(day.unwrap().path()).unwrap() {
                out.push(run.unwrap().path());
            }
        }
        out
    }
}

fn date(args: &[&str]) -> String {
    let out = Command::new("date").arg("-u").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn once_runs_what_is_due_into_a_dated_dir_and_history_lists_it_held() {
    // The gap keeps a second `--once` from running even in the next minute.
    let s = Setup::new("min_between_runs: 1h\n");
    let out = s.once();
    assert_exit(&out, 0);
    let runs = s.run_dirs();
    assert_eq!(runs.len(), 1, "{runs:?}\n{}", stderr(&out));
    let run = &runs[0];
    let day = name(run.parent().unwrap());
    assert_eq!(day.len(), 10, "YYYY-MM-DD: {day}");
    assert!(
        name(run).ends_with("-tiny") && name(run).len() == "HHMMSS-tiny".len(),
        "{run:?}"
    );
    for f in [
        "journal.jsonl",
        "run.json",
        "junit.xml",
        "summary.md",
        "stdout.log",
        "stderr.log",
    ] {
        assert!(run.join(f).is_file(), "{f} missing in {run:?}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"], "held");

    let h = s.simian(&["history", "game-days"]).output().unwrap();
    assert_exit(&h, 0);
    let text = stdout(&h);
    let row = text.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("tiny") && row.contains("held") && row.contains(&day),
        "{text}"
    );
    assert!(text.contains("tiny  ✔"), "{text}");

    // Again: that due time has run (or, past the minute, the gap holds the next one off).
    let again = s.once();
    assert_exit(&again, 0);
    let err = stderr(&again);
    assert!(
        err.contains("already ran for this due time") || err.contains("min_between_runs"),
        "{err}"
    );
    assert_eq!(s.run_dirs().len(), 1);
}

#[test]
fn once_refuses_while_a_live_process_holds_the_lock() {
    let s = Setup::new("");
    std::fs::create_dir_all(s.state()).unwrap();
    let me = std::process::id();
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let lock = serde_json::json!({
        "pid": me,
        "host": host,
        "started": date(&["+%Y-%m-%dT%H:%M:%SZ"]),
        "experiment": "chaos-gorilla",
        "run_dir": "/var/lib/game-days/x",
    });
    std::fs::write(s.state().join("schedule.lock"), lock.to_string()).unwrap();
    let out = s.once();
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(&format!("pid {me} on {host}")), "{err}");
    assert!(err.contains("running chaos-gorilla"), "{err}");
    assert!(s.run_dirs().is_empty(), "nothing may start");
    assert!(
        s.state().join("schedule.lock").exists(),
        "someone else's lock is left alone"
    );
}

#[test]
fn the_kill_switch_starts_nothing() {
    let s = Setup::new("");
    std::fs::create_dir_all(s.state()).unwrap();
    std::fs::write(s.state().join("kill-switch"), "").unwrap();
    let out = s.once();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("kill switch is on"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(s.state().join("kill-switch")).unwrap();

    let out = s
        .simian(&["schedule", "game-days.yaml", "--once"])
        .env("SIMIAN_KILL_SWITCH", "1")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("SIMIAN_KILL_SWITCH is set"),
        "{}",
        stderr(&out)
    );
    assert!(s.run_dirs().is_empty());
}

#[test]
fn dry_run_names_the_blackout_and_window_that_block_a_due_time() {
    let tomorrow = date(&["-d", "+1 day", "+%F"]);
    let closed = date(&["-d", "+2 days", "+%a"]).to_ascii_lowercase();
    let open: Vec<&str> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .filter(|d| *d != closed)
        .collect();
    let s = Setup::new("");
    std::fs::write(
        s.dir.path().join("game-days.yaml"),
        format!(
            "version: 1\nblackout: [{tomorrow}]\nwindows: [{{ days: [{}] }}]\nexperiments:\n  - file: tiny.yaml\n    cron: \"0 12 * * *\"\n",
            open.join(", ")
        ),
    )
    .unwrap();
    let out = s
        .simian(&["schedule", "game-days.yaml", "--dry-run", "--next", "4"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("blocked: blackout day {tomorrow}")),
        "{text}"
    );
    assert!(text.contains("blocked: outside the windows"), "{text}");
    assert!(text.contains("  runs"), "{text}");
    assert!(
        !s.dir.path().join("game-days").exists(),
        "a dry run runs nothing"
    );
}

#[test]
fn a_bad_schedule_is_refused_with_every_problem_located() {
    let s = Setup::new("");
    std::fs::write(
        s.dir.path().join("game-days.yaml"),
        "version: 1\ntimezone: Mars/Olympus\nexperiments:\n  - file: tiny.yaml\n    cron: \"0 25 * * *\"\n",
    )
    .unwrap();
    let out = s.once();
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("game-days.yaml:2:11"), "{err}");
    assert!(err.contains("unknown time zone `Mars/Olympus`"), "{err}");
    assert!(err.contains("game-days.yaml:5:11"), "{err}");
    assert!(err.contains("2 problems found"), "{err}");
}
