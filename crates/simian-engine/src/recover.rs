//! `simian recover`: revert every fault a journal shows applied and not yet reverted.

use std::path::Path;

use crate::journal::{self, Entry, Journal, JournalError};

#[derive(Debug, Default)]
pub struct Recovered {
    pub run_id: String,
    pub reverted: Vec<(String, Vec<String>)>,
    pub failed: Vec<(String, String)>,
    pub unreadable_lines: usize,
    /// The run's pid, when that process still seems to be running.
    pub still_running: Option<u32>,
}

/// Reverts what the journal shows outstanding, newest first. Idempotent:
/// a second call finds nothing outstanding (and a revert is safe to repeat anyway).
pub async fn recover(path: &Path) -> Result<Recovered, JournalError> {
    recover_as(path, "recover").await
}

/// [`recover`], recording `by` (e.g. `guardian`) as who reverted.
pub async fn recover_as(path: &Path, by: &str) -> Result<Recovered, JournalError> {
    let read = journal::read(path)?;
    let mut out = Recovered {
        run_id: read.header.run_id.clone(),
        unreadable_lines: read.unreadable,
        ..Default::default()
    };
    let pid = read.header.pid;
    let finished = read.entries.iter().any(|e| matches!(e, Entry::End { .. }));
    if !finished && pid != std::process::id() {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains("simian") {
            out.still_running = Some(pid);
        }
    }
    let todo = journal::outstanding(&read.entries);
    if todo.is_empty() {
        return Ok(out);
    }
    let mut j = Journal::open(path)?;
    for (fault, seq, record) in todo {
        match simian_injectors::revert(&record).await {
            Ok(r) => {
                j.append(
                    &Entry::Reverted {
                        fault: fault.clone(),
                        seq,
                        by: by.into(),
                        actions: r.actions.clone(),
                    },
                    true,
                )?;
                out.reverted.push((fault, r.actions));
            }
            Err(e) => {
                j.append(
                    &Entry::RevertFailed {
                        fault: fault.clone(),
                        seq,
                        error: e.to_string(),
                    },
                    true,
                )?;
                out.failed.push((fault, e.to_string()));
            }
        }
    }
    Ok(out)
}
