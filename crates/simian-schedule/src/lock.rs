//! One run at a time per state dir: `STATE_DIR/schedule.lock`.
//!
//! The lock file is created with `O_EXCL` and holds JSON: the scheduler's pid, host, start
//! time, the experiment and run dir, and the run's pid once it has one. It is removed when
//! the run ends. A lock is **stale**, and taken over with a message, when
//! - it was written on this host and neither the scheduler's pid nor the run's exists any
//!   more, or
//! - it is older than `max_run` plus a margin (`stop_grace` + 5 minutes), on any host:
//!   by then its scheduler would have stopped its run.
//!
//! Taking over happens under `flock` on the lock file, and the content is re-read there,
//! so two schedulers cannot both take over the same stale lock.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// A lock file younger than this that cannot be read is being written, not stale.
const UNREADABLE_GRACE: Duration = Duration::from_secs(10);

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// Empty: this host.
    #[serde(default)]
    pub host: String,
    /// RFC 3339.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    /// The `simian run` child, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_pid: Option<u32>,
}

impl Holder {
    /// This process, now.
    pub fn me(now: DateTime<Utc>) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            started: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            experiment: None,
            run_dir: None,
            child_pid: None,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.host.is_empty() {
            write!(f, " on {}", self.host)?;
        }
        write!(f, " since {}", self.started)?;
        if let Some(e) = &self.experiment {
            write!(f, ", running {e}")?;
        }
        if let Some(d) = &self.run_dir {
            write!(f, " into {}", d.display())?;
        }
        Ok(())
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// True when a process with this pid exists (EPERM counts: it exists, it is not ours).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// Why a holder's lock is stale, or `None` while it stands.
pub fn stale(h: &Holder, here: &str, now: DateTime<Utc>, max_age: Duration) -> Option<String> {
    if let Ok(started) = DateTime::parse_from_rfc3339(&h.started) {
        let age = (now - started.with_timezone(&Utc))
            .to_std()
            .unwrap_or_default();
        if age > max_age {
            return Some(format!(
                "it is {} old, more than max_run + margin ({})",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(max_age)
            ));
        }
    }
    let local = h.host.is_empty() || h.host == here;
    let alive = pid_alive(h.pid) || h.child_pid.is_some_and(pid_alive);
    if local && !alive {
        return Some(match h.child_pid {
            Some(c) => format!(
                "neither pid {} nor its run (pid {c}) exists on this host",
                h.pid
            ),
            None => format!("pid {} no longer exists on this host", h.pid),
        });
    }
    None
}

/// The outcome of [`acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// Ours; `took_over` says whose stale lock it replaced, and why.
    Taken {
        lock: RunLock,
        took_over: Option<String>,
    },
    /// Someone else's; `None` when the file could not be read (it is being written).
    Held {
        path: PathBuf,
        holder: Option<Holder>,
    },
}

/// A held lock; dropping it removes the file (if it is still ours).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    pub holder: Holder,
}

/// Takes the lock at `path` for `holder`, or says who holds it.
pub fn acquire(
    path: &Path,
    holder: Holder,
    now: DateTime<Utc>,
    max_age: Duration,
) -> io::Result<Acquired> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let here = hostname();
    for _ in 0..3 {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(f) => {
                let mut f = lock_file(f)?;
                write_holder(&mut f, &holder)?;
                return Ok(Acquired::Taken {
                    lock: RunLock {
                        path: path.to_path_buf(),
                        holder,
                    },
                    took_over: None,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let f = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            // Released meanwhile: try to create it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut f = lock_file(f)?;
        if !same_file(&f, path) {
            continue;
        }
        let mut text = String::new();
        f.read_to_string(&mut text)?;
        let why = match serde_json::from_str::<Holder>(&text) {
            Ok(old) => match stale(&old, &here, now, max_age) {
                Some(why) => format!("took over the stale lock of {old}: {why}"),
                None => {
                    return Ok(Acquired::Held {
                        path: path.to_path_buf(),
                        holder: Some(old),
                    })
                }
            },
            Err(_) => {
                let age = f.metadata()?.modified()?.elapsed().unwrap_or_default();
                if age < UNREADABLE_GRACE {
                    return Ok(Acquired::Held {
                        path: path.to_path_buf(),
                        holder: None,
                    });
                }
                "took over an unreadable lock file".to_string()
            }
        };
        write_holder(&mut f, &holder)?;
        return Ok(Acquired::Taken {
            lock: RunLock {
                path: path.to_path_buf(),
                holder,
            },
            took_over: Some(why),
        });
    }
    Err(io::Error::other(format!(
        "the lock {} kept changing; try again",
        path.display()
    )))
}

fn lock_file(f: File) -> io::Result<Flock<File>> {
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
}

/// Whether the open file is still the one at `path` (not removed and replaced).
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

fn write_holder(f: &mut File, h: &Holder) -> io::Result<()> {
    let text = serde_json::to_string(h).map_err(io::Error::other)?;
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the lock with a changed holder (e.g. the run's pid), if it is still ours.
    pub fn update(&mut self, change: impl FnOnce(&mut Holder)) -> io::Result<()> {
        let mut next = self.holder.clone();
        change(&mut next);
        let f = OpenOptions::new().read(true).write(true).open(&self.path)?;
        let mut f = lock_file(f)?;
        if !self.still_ours(&mut f) {
            return Err(io::Error::other(format!(
                "the lock {} was taken over",
                self.path.display()
            )));
        }
        write_holder(&mut f, &next)?;
        self.holder = next;
        Ok(())
    }

    fn still_ours(&self, f: &mut File) -> bool {
        let mut text = String::new();
        f.read_to_string(&mut text).is_ok()
            && serde_json::from_str::<Holder>(&text)
                .is_ok_and(|h| h.pid == self.holder.pid && h.started == self.holder.started)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let Ok(f) = OpenOptions::new().read(true).open(&self.path) else {
            return;
        };
        if let Ok(mut f) = lock_file(f) {
            if self.still_ours(&mut f) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn holder(pid: u32, started: DateTime<Utc>) -> Holder {
        Holder {
            pid,
            ..Holder::me(started)
        }
    }

    /// A pid that exists no more: a child that has been reaped.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn a_second_taker_is_refused_and_told_who_holds_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("schedule.lock");
        let now = Utc::now();
        let Acquired::Taken {
            lock,
            took_over: None,
        } = acquire(&path, Holder::me(now), now, HOUR).unwrap()
        else {
            panic!("not taken")
        };
        match acquire(&path, Holder::me(now), now, HOUR).unwrap() {
            Acquired::Held {
                holder: Some(h), ..
            } => {
                assert_eq!(h.pid, std::process::id());
                assert!(h.to_string().starts_with(&format!("pid {} on ", h.pid)));
            }
            other => panic!("{other:?}"),
        }
        drop(lock);
        assert!(!path.exists(), "released on drop");
        assert!(matches!(
            acquire(&path, Holder::me(now), now, HOUR).unwrap(),
            Acquired::Taken { .. }
        ));
    }

    #[test]
    fn a_lock_whose_pids_are_gone_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("schedule.lock");
        let now = Utc::now();
        let dead = holder(dead_pid(), now);
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        match acquire(&path, Holder::me(now), now, HOUR).unwrap() {
            Acquired::Taken {
                lock,
                took_over: Some(why),
            } => {
                assert!(why.contains("no longer exists on this host"), "{why}");
                let h: Holder =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                assert_eq!(h, lock.holder);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_live_run_keeps_the_lock_of_a_dead_scheduler() {
        let now = Utc::now();
        let h = Holder {
            child_pid: Some(std::process::id()),
            ..holder(dead_pid(), now)
        };
        assert_eq!(stale(&h, &hostname(), now, HOUR), None);
    }

    #[test]
    fn an_old_lock_is_stale_even_if_its_pid_lives_or_is_elsewhere() {
        let now = Utc::now();
        let old = holder(std::process::id(), now - chrono::Duration::hours(3));
        let why = stale(&old, &hostname(), now, 2 * HOUR).unwrap();
        assert!(why.contains("more than max_run + margin"), "{why}");
        let elsewhere = Holder {
            host: "elsewhere".into(),
            ..holder(dead_pid(), now)
        };
        assert_eq!(
            stale(&elsewhere, &hostname(), now, HOUR),
            None,
            "another host's pid cannot be checked"
        );
    }

    #[test]
    fn an_unreadable_fresh_lock_is_held() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("schedule.lock");
        std::fs::write(&path, "").unwrap();
        let now = Utc::now();
        assert!(matches!(
            acquire(&path, Holder::me(now), now, HOUR).unwrap(),
            Acquired::Held { holder: None, .. }
        ));
    }

    #[test]
    fn update_records_the_run() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("schedule.lock");
        let now = Utc::now();
        let Acquired::Taken { mut lock, .. } = acquire(&path, Holder::me(now), now, HOUR).unwrap()
        else {
            panic!()
        };
        lock.update(|h| h.child_pid = Some(42)).unwrap();
        let h: Holder = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(h.child_pid, Some(42));
    }
}
