//! One run per target set: before anything is injected, a run takes a lock for each
//! kind of target its faults hit (each plan's universe: the lab's instances, the proxies
//! at one API, the EC2 instances of a region, ...), so two experiments never break the
//! same system at once, scheduled or ad hoc.
//!
//! A lock is `STATE_DIR/locks/SLUG.lock`, created with `O_EXCL`, holding the run that
//! took it. It is stale, and taken over, when its run's process is gone from this host
//! and its journal shows nothing still applied; a dead run with faults still applied
//! keeps it until `simian recover` (or its guardian) has reverted them.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    run_id: String,
    experiment: String,
    pid: u32,
    host: String,
    journal: String,
    universe: String,
}

/// The locks a run holds; released on drop.
pub struct Locks(Vec<PathBuf>);

impl Drop for Locks {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Takes every lock of `universes`, all or none. The error says who holds the one that
/// could not be had.
pub fn take(
    state_dir: &Path,
    universes: &BTreeSet<String>,
    experiment: &str,
    journal: &Path,
) -> Result<Locks, String> {
    let dir = state_dir.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let host = host();
    let mut held = Locks(Vec::new());
    for universe in universes {
        let path = dir.join(format!("{}.lock", slug(universe)));
        let me = Holder {
            run_id: crate::operator::run_name(journal),
            experiment: experiment.to_string(),
            pid: std::process::id(),
            host: host.clone(),
            journal: journal.display().to_string(),
            universe: universe.clone(),
        };
        // Two tries: the second after a stale lock was removed.
        let mut taken = false;
        for _ in 0..2 {
            match create(&path, &me) {
                Ok(()) => {
                    taken = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<Holder> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| serde_json::from_str(&s).ok());
                    match holder {
                        Some(h) if h.host == host && !alive(h.pid) => {
                            if let Some(n) = applied(Path::new(&h.journal)) {
                                return Err(format!(
                                    "run {} (experiment {}) died with {n} fault(s) still applied to {universe}; revert them first: `simian recover {}`",
                                    h.run_id, h.experiment, h.journal
                                ));
                            }
                            eprintln!(
                                "note: taking over the lock on {universe} from run {} (pid {} is gone, nothing left applied)",
                                h.run_id, h.pid
                            );
                            let _ = std::fs::remove_file(&path);
                        }
                        Some(h) => {
                            return Err(format!(
                                "run {} (experiment {}, pid {} on {}) is already breaking {universe}: two experiments never break the same system at once\n  = hint: wait for it, or stop it with `simian abort`; its journal is {}",
                                h.run_id, h.experiment, h.pid, h.host, h.journal
                            ));
                        }
                        None => {
                            return Err(format!(
                                "{} holds a lock on {universe} that cannot be read; if no run is going, remove it",
                                path.display()
                            ));
                        }
                    }
                }
                Err(e) => return Err(format!("create {}: {e}", path.display())),
            }
        }
        if !taken {
            return Err(format!("could not take {}", path.display()));
        }
        held.0.push(path);
    }
    Ok(held)
}

fn create(path: &Path, me: &Holder) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(serde_json::to_string(me).unwrap_or_default().as_bytes())
}

/// How many faults the journal shows applied and not reverted; `None` for none (or an
/// unreadable journal of a run that never got to inject).
fn applied(journal: &Path) -> Option<usize> {
    let read = simian_engine::journal::read(journal).ok()?;
    let n = simian_engine::journal::outstanding(&read.entries).len();
    (n > 0).then_some(n)
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

fn host() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A file name for a universe: readable, and unique by a hash of the whole.
fn slug(universe: &str) -> String {
    let readable: String = universe
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(48)
        .collect();
    let hash = simian_engine::sha256_hex(universe.as_bytes());
    format!("{readable}-{}", &hash[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_held_lock_refuses_a_second_run_naming_the_first() {
        let d = tempfile::tempdir().unwrap();
        let first = take(
            d.path(),
            &set(&["lab instances"]),
            "a",
            Path::new("/x/r1.jsonl"),
        )
        .unwrap();
        let e = take(
            d.path(),
            &set(&["proxies at X", "lab instances"]),
            "b",
            Path::new("/x/r2.jsonl"),
        )
        .err()
        .unwrap();
        assert!(e.contains("run r1 (experiment a"), "{e}");
        // All or none: the proxy lock taken before the refusal was let go.
        let other = take(
            d.path(),
            &set(&["proxies at X"]),
            "c",
            Path::new("/x/r3.jsonl"),
        );
        assert!(other.is_ok());
        drop(first);
        assert!(take(
            d.path(),
            &set(&["lab instances"]),
            "b",
            Path::new("/x/r2.jsonl")
        )
        .is_ok());
    }

    #[test]
    fn a_lock_of_a_dead_run_with_nothing_applied_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("locks");
        std::fs::create_dir_all(&dir).unwrap();
        let dead = Holder {
            run_id: "old".into(),
            experiment: "a".into(),
            pid: i32::MAX as u32,
            host: host(),
            journal: "/nonexistent.jsonl".into(),
            universe: "lab instances".into(),
        };
        create(&dir.join(format!("{}.lock", slug("lab instances"))), &dead).unwrap();
        assert!(take(
            d.path(),
            &set(&["lab instances"]),
            "b",
            Path::new("/x/r.jsonl")
        )
        .is_ok());
    }

    #[test]
    fn slugs_differ_for_universes_that_read_alike() {
        assert_ne!(slug("proxies at http://a:1"), slug("proxies at http-//a-1"));
    }
}
