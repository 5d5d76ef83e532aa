//! Running one scheduled experiment: `simian run FILE` as a child process, watched.
//!
//! The child gets its own process group, so a Ctrl-C at the terminal reaches only the
//! scheduler, which passes on exactly one SIGINT. While it runs, the kill switch and the
//! `max_run` bound are polled every 500 ms; either (or SIGINT/SIGTERM to the scheduler)
//! sends the child SIGINT: it reverts every fault and exits 2. A child still running
//! `stop_grace` later is killed (SIGKILL), and `simian recover JOURNAL` reverts what its
//! journal shows applied; so does a child that died of any signal.

use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Experiment;
use crate::history::JOURNAL;
use crate::kill::KillSwitch;

/// How often the kill switch and the deadline are looked at while a run goes on.
pub const POLL: Duration = Duration::from_millis(500);

/// Exit codes of `simian run` (the contract in the README).
pub mod exit {
    /// Held, or nothing ran.
    pub const OK: i32 = 0;
    pub const ABORTED: i32 = 2;
    pub const NOT_RUN: i32 = 3;
    pub const REVERT_FAILED: i32 = 4;
}

/// Files every run writes into its dir.
pub const REPORT_FILES: [(&str, &str); 5] = [
    ("--journal", JOURNAL),
    ("--json", "run.json"),
    ("--junit", "junit.xml"),
    ("--summary", "summary.md"),
    ("--html", "report.html"),
];

/// SIGINT and SIGTERM to the scheduler, as a stream.
pub struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    /// Takes over SIGINT and SIGTERM for this process (needs a tokio runtime).
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals(Some((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))))
    }

    /// A stream that never yields (tests).
    pub fn none() -> Signals {
        Signals(None)
    }

    pub async fn recv(&mut self) -> &'static str {
        match &mut self.0 {
            Some((int, term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            None => std::future::pending().await,
        }
    }
}

/// What to run, and where its files go.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    pub state_dir: PathBuf,
    pub experiment: Experiment,
    pub run_dir: PathBuf,
}

impl Launch {
    /// `--state-dir DIR run FILE --journal … --html … ARGS…`
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "--state-dir".into(),
            self.state_dir.clone().into(),
            "run".into(),
            self.experiment.file.clone().into(),
        ];
        for (flag, file) in REPORT_FILES {
            a.push(flag.into());
            a.push(self.run_dir.join(file).into());
        }
        a.extend(self.experiment.args.iter().map(OsString::from));
        a
    }

    pub fn journal(&self) -> PathBuf {
        self.run_dir.join(JOURNAL)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: i32,
    /// Why the scheduler stopped it, if it did.
    pub stopped: Option<String>,
    /// Stopped because the scheduler got SIGINT or SIGTERM (so it should end too).
    pub signalled: bool,
}

/// Starts the run (stdout and stderr into `stdout.log` and `stderr.log` of its dir).
pub fn spawn(l: &Launch) -> std::io::Result<Child> {
    std::fs::create_dir_all(&l.run_dir)?;
    let out = File::create(l.run_dir.join("stdout.log"))?;
    let err = File::create(l.run_dir.join("stderr.log"))?;
    Command::new(&l.exe)
        .args(l.args())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
}

fn send(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), sig);
    }
}

/// Watches a started run to its end; `log` reports what the scheduler does.
pub async fn supervise(
    l: &Launch,
    mut child: Child,
    switch: &KillSwitch,
    max_run: Duration,
    grace: Duration,
    signals: &mut Signals,
    log: &dyn Fn(&str),
) -> Outcome {
    let pid = child.id().unwrap_or(0);
    let name = &l.experiment.name;
    let deadline = tokio::time::Instant::now() + max_run;
    let mut poll = tokio::time::interval(POLL);
    let mut signalled = false;
    let why = loop {
        tokio::select! {
            st = child.wait() => return finish(l, st.ok(), None, false, log).await,
            _ = poll.tick() => {
                if let Some(k) = switch.active() {
                    break format!("kill switch ({k})");
                }
                if tokio::time::Instant::now() >= deadline {
                    break format!("it ran longer than max_run ({})", humantime::format_duration(max_run));
                }
            }
            s = signals.recv() => {
                signalled = true;
                break format!("{s} received");
            }
        }
    };
    log(&format!(
        "stopping {name} (pid {pid}): {why}; sent SIGINT: it reverts every fault, then exits"
    ));
    send(pid, Signal::SIGINT);
    let grace_end = tokio::time::sleep(grace);
    tokio::pin!(grace_end);
    let status = loop {
        tokio::select! {
            st = child.wait() => break Some(st),
            _ = &mut grace_end => break None,
            s = signals.recv() => log(&format!(
                "{s}: still waiting for {name} to revert (at most {} after the first signal)",
                humantime::format_duration(grace)
            )),
        }
    };
    let out = match status {
        Some(st) => finish(l, st.ok(), Some(why), false, log).await,
        None => {
            log(&format!(
                "{name} did not end within {} of SIGINT: SIGKILL, then `simian recover {}`",
                humantime::format_duration(grace),
                l.journal().display()
            ));
            let _ = child.start_kill();
            let st = child.wait().await.ok();
            finish(l, st, Some(why), true, log).await
        }
    };
    Outcome { signalled, ..out }
}

async fn finish(
    l: &Launch,
    status: Option<ExitStatus>,
    stopped: Option<String>,
    killed: bool,
    log: &dyn Fn(&str),
) -> Outcome {
    let code = status.and_then(|s| s.code());
    if code.is_some() && !killed {
        return Outcome {
            exit_code: code.unwrap_or(exit::NOT_RUN),
            stopped,
            signalled: false,
        };
    }
    // Killed, by us or anyone: its faults may still be in place.
    if !killed {
        log(&format!(
            "{} died of a signal; `simian recover {}`",
            l.experiment.name,
            l.journal().display()
        ));
    }
    let recovered = recover(l).await;
    match recovered {
        Ok(()) => {
            log("recover: every fault the journal shows applied is reverted");
            Outcome {
                exit_code: exit::ABORTED,
                stopped,
                signalled: false,
            }
        }
        Err(e) => {
            log(&format!(
                "recover FAILED ({e}): something may still be broken; see {} and run `simian recover {}`",
                l.run_dir.join("recover.log").display(),
                l.journal().display()
            ));
            Outcome {
                exit_code: exit::REVERT_FAILED,
                stopped,
                signalled: false,
            }
        }
    }
}

/// `simian recover JOURNAL`, its output into `recover.log`.
async fn recover(l: &Launch) -> Result<(), String> {
    if !l.journal().exists() {
        // Killed before its journal existed: nothing was injected.
        return Ok(());
    }
    let log = File::create(l.run_dir.join("recover.log")).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let st = Command::new(&l.exe)
        .arg("--state-dir")
        .arg(&l.state_dir)
        .arg("recover")
        .arg(l.journal())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .status()
        .await
        .map_err(|e| e.to_string())?;
    match st.code() {
        Some(0) => Ok(()),
        Some(c) => Err(format!("exit {c}")),
        None => Err("killed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Trigger;
    use std::path::Path;

    #[test]
    fn a_run_writes_every_report_into_its_dir() {
        let l = Launch {
            exe: "/bin/simian".into(),
            state_dir: "/s".into(),
            experiment: Experiment {
                name: "x".into(),
                file: "/e/x.yaml".into(),
                trigger: Trigger::Random {
                    mean: Duration::from_secs(60),
                },
                args: vec!["--lab".into()],
            },
            run_dir: "/out/2026-11-23/110000-x".into(),
        };
        let args: Vec<String> = l
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "--state-dir /s run /e/x.yaml --journal /out/2026-11-23/110000-x/journal.jsonl \
             --json /out/2026-11-23/110000-x/run.json --junit /out/2026-11-23/110000-x/junit.xml \
             --summary /out/2026-11-23/110000-x/summary.md --html /out/2026-11-23/110000-x/report.html --lab"
        );
    }

    fn launch(dir: &Path, script: &str) -> Launch {
        let exe = dir.join("fake-simian");
        std::fs::write(&exe, format!("#!/bin/sh\n{script}\n")).unwrap();
        let mut perm = std::fs::metadata(&exe).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&exe, perm).unwrap();
        Launch {
            exe,
            state_dir: dir.to_path_buf(),
            experiment: Experiment {
                name: "x".into(),
                file: dir.join("x.yaml"),
                trigger: Trigger::Random {
                    mean: Duration::from_secs(60),
                },
                args: vec![],
            },
            run_dir: dir.join("run"),
        }
    }

    #[tokio::test]
    async fn the_kill_switch_interrupts_a_run_which_reverts_and_exits_2() {
        let d = tempfile::tempdir().unwrap();
        // A stand-in for `simian run`: exits 2 on SIGINT, like the runner.
        let l = launch(
            d.path(),
            "trap 'echo reverted; exit 2' INT\nwhile :; do sleep 0.05; done",
        );
        let switch = KillSwitch::new(d.path().join("KILL"));
        let mut signals = Signals::none();
        let child = spawn(&l).unwrap();
        let kill_file = switch.file.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(kill_file, "").unwrap();
        });
        let started = std::time::Instant::now();
        let out = supervise(
            &l,
            child,
            &switch,
            Duration::from_secs(60),
            Duration::from_secs(10),
            &mut signals,
            &|_| {},
        )
        .await;
        assert_eq!(out.exit_code, 2);
        assert!(out.stopped.unwrap().starts_with("kill switch"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let stdout = std::fs::read_to_string(l.run_dir.join("stdout.log")).unwrap();
        assert_eq!(stdout.trim(), "reverted");
    }

    #[tokio::test]
    async fn a_run_that_ignores_sigint_is_killed_and_recovered() {
        let d = tempfile::tempdir().unwrap();
        // Ignores SIGINT; as `recover`, records that it was asked and succeeds.
        let l = launch(
            d.path(),
            "if [ \"$3\" = recover ]; then echo \"recover $4\"; exit 0; fi\ntouch \"$6\"\ntrap '' INT\nwhile :; do sleep 0.05; done",
        );
        let switch = KillSwitch::new(d.path().join("KILL"));
        let mut signals = Signals::none();
        let child = spawn(&l).unwrap();
        let logs = std::sync::Mutex::new(Vec::new());
        let out = supervise(
            &l,
            child,
            &switch,
            Duration::from_millis(300),
            Duration::from_millis(500),
            &mut signals,
            &|m| logs.lock().unwrap().push(m.to_string()),
        )
        .await;
        assert_eq!(out.exit_code, 2, "{:?}", logs.lock().unwrap());
        assert!(out.stopped.unwrap().contains("max_run"));
        let rec = std::fs::read_to_string(l.run_dir.join("recover.log")).unwrap();
        assert_eq!(rec.trim(), format!("recover {}", l.journal().display()));
        assert!(logs.lock().unwrap().iter().any(|m| m.contains("SIGKILL")));
    }
}
