//! The dead-man's switch: a guardian process (this binary, `simian guard`, detached
//! in a session of its own) that watches a run's heartbeat. If the runner dies
//! (SIGKILL, OOM) or stops beating for longer than a bound (hung, or the machine was
//! suspended), the guardian kills what is left of it and reverts everything from the
//! journal, recording `by: guardian` there.
//!
//! The runner touches `RUN.heartbeat` beside its journal every second and removes it
//! when it ends on its own (its faults then reverted by itself); the guardian then
//! exits. Its log is `RUN.guardian.log`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use simian_core::Dur;

use crate::exit;

/// How often the runner beats, and the guardian looks.
const BEAT: Duration = Duration::from_secs(1);
const LOOK: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The run's journal.
    #[arg(long, value_name = "PATH")]
    pub journal: PathBuf,
    /// The runner's pid.
    #[arg(long)]
    pub pid: u32,
    /// A heartbeat older than this counts as a dead runner.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub stale_after: Dur,
}

fn heartbeat(journal: &Path) -> PathBuf {
    journal.with_extension("heartbeat")
}

/// The runner's side: the heartbeat and the guardian process.
pub struct Guarded {
    beat: PathBuf,
    child: Option<Child>,
    task: tokio::task::JoinHandle<()>,
}

impl Guarded {
    /// Starts beating and spawns the guardian. A guardian that cannot start is a
    /// warning, not a refusal: the journal and `simian recover` remain.
    pub fn start(journal: &Path, state_dir: &Path, stale_after: Dur) -> Guarded {
        let beat = heartbeat(journal);
        touch(&beat);
        let task = {
            let beat = beat.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(BEAT).await;
                    touch(&beat);
                }
            })
        };
        let log = journal.with_extension("guardian.log");
        let child = std::env::current_exe().and_then(|exe| {
            let log = std::fs::File::create(&log)?;
            Command::new(exe)
                .arg("--state-dir")
                .arg(state_dir)
                .arg("guard")
                .arg("--journal")
                .arg(journal)
                .arg("--pid")
                .arg(std::process::id().to_string())
                .arg("--stale-after")
                .arg(stale_after.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
        });
        let child = match child {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("warning: cannot start the guardian ({e}); if this run dies, run `simian recover {}`", journal.display());
                None
            }
        };
        Guarded { beat, child, task }
    }

    /// The run ended on its own: stop beating and let the guardian go.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.beat);
        if let Some(mut c) = self.child.take() {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn touch(p: &Path) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let _ = std::fs::write(p, now.to_string());
}

/// `simian guard`: watches one run until it ends; reverts its faults if it dies.
pub async fn guard(args: GuardArgs) -> i32 {
    // Out of the runner's session: Ctrl-C or a hangup of its terminal does not reach us.
    let _ = nix::unistd::setsid();
    let beat = heartbeat(&args.journal);
    let pid = Pid::from_raw(args.pid as i32);
    log(&format!(
        "guarding run pid {} (journal {})",
        args.pid,
        args.journal.display()
    ));
    let why = loop {
        tokio::time::sleep(LOOK).await;
        let age = match std::fs::metadata(&beat).and_then(|m| m.modified()) {
            // No heartbeat: the runner ended on its own and reverted its faults.
            Err(_) => {
                log("the run ended; nothing to do");
                return exit::HELD;
            }
            Ok(t) => t.elapsed().unwrap_or_default(),
        };
        if !alive(pid) {
            break format!("the runner (pid {}) died", args.pid);
        }
        if age > args.stale_after.0 {
            // Hung or suspended: it must not wake up and act after we revert.
            let _ = kill(pid, Signal::SIGKILL);
            let until = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            break format!(
                "the runner (pid {}) stopped beating for {}s; killed it",
                args.pid,
                age.as_secs()
            );
        }
    };
    log(&format!("{why}: reverting every fault from the journal"));
    let code = match simian_engine::recover_as(&args.journal, "guardian").await {
        Ok(r) => {
            for (fault, actions) in &r.reverted {
                log(&format!("reverted {fault}: {}", actions.join("; ")));
            }
            for (fault, e) in &r.failed {
                log(&format!("REVERT FAILED {fault}: {e}"));
            }
            if r.failed.is_empty() {
                exit::HELD
            } else {
                exit::REVERT_FAILED
            }
        }
        Err(e) => {
            log(&format!("cannot recover: {e}"));
            exit::REVERT_FAILED
        }
    };
    let _ = std::fs::remove_file(&beat);
    code
}

/// Alive and not a zombie.
fn alive(pid: Pid) -> bool {
    if kill(pid, None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X'))
}

fn log(line: &str) {
    eprintln!(
        "{} {line}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
}
