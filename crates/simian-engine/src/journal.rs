//! The run journal: append-only JSON lines. It opens with an audit header;
//! every fault's revert record is written and fsync'd *before* the fault is
//! applied, so `simian recover` can undo a run whose runner was SIGKILLed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use simian_injectors::RevertRecord;

use crate::events::RunEvent;
use crate::report::RunReport;

/// Who ran what, where: the first line of every journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub run_id: String,
    pub experiment: String,
    pub file: String,
    pub sha256: String,
    pub simian_version: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command_line: Vec<String>,
    pub seed: u64,
    pub started_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    Header(Header),
    /// Written and synced before the fault is applied.
    Intent {
        fault: String,
        seq: u32,
        irreversible: bool,
        record: RevertRecord,
    },
    Applied {
        fault: String,
        seq: u32,
    },
    Reverted {
        fault: String,
        seq: u32,
        by: String,
        actions: Vec<String>,
    },
    RevertFailed {
        fault: String,
        seq: u32,
        error: String,
    },
    Event(RunEvent),
    /// The run's report, without its events (they are the `Event` entries); written
    /// just before `End`, so `simian report JOURNAL` can render the run again.
    Report(Box<RunReport>),
    End {
        verdict: String,
        exit_code: i32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("write the journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read the journal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a simian journal: {why}")]
    NotJournal { path: PathBuf, why: String },
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Creates a new journal (never overwrites one) and syncs its header.
    pub fn create(path: &Path, header: Header) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut j = Journal {
            path: path.to_path_buf(),
            file,
        };
        j.append(&Entry::Header(header), true)?;
        Ok(j)
    }

    /// Opens an existing journal to append to (for `recover`).
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line; with `durable`, waits until it is on disk.
    pub fn append(&mut self, e: &Entry, durable: bool) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(e).expect("journal entries serialize");
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        if durable {
            self.file.sync_data().map_err(io)?;
        }
        Ok(())
    }
}

/// A journal read back: its header, entries, and lines it could not read
/// (a line torn by a SIGKILL mid-write is expected at the end).
pub struct Read {
    pub header: Header,
    pub entries: Vec<Entry>,
    pub unreadable: usize,
}

pub fn read(path: &Path) -> Result<Read, JournalError> {
    let f = File::open(path).map_err(|source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut entries = Vec::new();
    let mut unreadable = 0;
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|source| JournalError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) => entries.push(e),
            Err(_) => unreadable += 1,
        }
    }
    let header = match entries.first() {
        Some(Entry::Header(h)) => h.clone(),
        _ => {
            return Err(JournalError::NotJournal {
                path: path.to_path_buf(),
                why: "it does not start with a header line".into(),
            })
        }
    };
    Ok(Read {
        header,
        entries,
        unreadable,
    })
}

/// Faults whose intent is recorded but not their revert, newest first.
pub fn outstanding(entries: &[Entry]) -> Vec<(String, u32, RevertRecord)> {
    let mut open: Vec<(String, u32, RevertRecord)> = Vec::new();
    for e in entries {
        match e {
            Entry::Intent {
                fault, seq, record, ..
            } => open.push((fault.clone(), *seq, record.clone())),
            Entry::Reverted { seq, .. } => open.retain(|(_, s, _)| s != seq),
            _ => {}
        }
    }
    open.reverse();
    open
}

/// The finished run's report, its events put back from the journal's `Event` entries;
/// `None` when the run did not finish (SIGKILLed, crashed, or still running).
pub fn report(entries: &[Entry]) -> Option<RunReport> {
    let mut report = entries.iter().rev().find_map(|e| match e {
        Entry::Report(r) => Some((**r).clone()),
        _ => None,
    })?;
    report.events = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Event(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect();
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use simian_experiment::ProcessAction;
    use simian_injectors::ProcessRevert;

    fn header() -> Header {
        Header {
            run_id: "r".into(),
            experiment: "e".into(),
            file: "f".into(),
            sha256: "0".into(),
            simian_version: "v".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            command_line: vec![],
            seed: 7,
            started_at: "t".into(),
        }
    }

    fn record() -> RevertRecord {
        RevertRecord::Process(ProcessRevert {
            action: ProcessAction::Stop,
            targets: vec![],
        })
    }

    #[test]
    fn outstanding_faults_survive_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let mut j = Journal::create(&p, header()).unwrap();
        for (i, f) in ["a", "b", "c"].iter().enumerate() {
            j.append(
                &Entry::Intent {
                    fault: f.to_string(),
                    seq: i as u32 + 1,
                    irreversible: false,
                    record: record(),
                },
                true,
            )
            .unwrap();
        }
        j.append(
            &Entry::Reverted {
                fault: "b".into(),
                seq: 2,
                by: "run".into(),
                actions: vec![],
            },
            true,
        )
        .unwrap();
        drop(j);
        // A SIGKILL mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"type\":\"reverted\",\"fau").unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.header.seed, 7);
        assert_eq!(r.unreadable, 1);
        let open: Vec<String> = outstanding(&r.entries)
            .into_iter()
            .map(|(f, _, _)| f)
            .collect();
        assert_eq!(open, vec!["c", "a"], "newest first, reverted ones gone");
    }

    #[test]
    fn the_report_is_rebuilt_with_the_journals_events() {
        use crate::events::{EventKind, Phase};
        use crate::report::Verdict;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let mut j = Journal::create(&p, header()).unwrap();
        let ev = |at_ms, phase| {
            Entry::Event(RunEvent {
                at_ms,
                kind: EventKind::Phase { phase },
            })
        };
        j.append(&ev(0, Phase::Before), false).unwrap();
        j.append(&ev(2000, Phase::Method), false).unwrap();
        let before_end = read(&p).unwrap();
        assert!(report(&before_end.entries).is_none(), "no report yet");
        let r = RunReport {
            experiment: "e".into(),
            file: "f".into(),
            run_id: "r".into(),
            seed: 7,
            journal: p.display().to_string(),
            started_at: "t".into(),
            leashed: false,
            verdict: Verdict::Held,
            exit_code: 0,
            reason: None,
            duration_ms: 3000,
            phases: vec![],
            assertions: vec![],
            faults: vec![],
            baseline: Default::default(),
            stop: None,
            recovery: None,
            events: vec![],
        };
        j.append(&Entry::Report(Box::new(r)), false).unwrap();
        j.append(
            &Entry::End {
                verdict: "held".into(),
                exit_code: 0,
            },
            true,
        )
        .unwrap();
        let back = report(&read(&p).unwrap().entries).expect("a report");
        assert_eq!(back.duration_ms, 3000);
        let at: Vec<u64> = back.events.iter().map(|e| e.at_ms).collect();
        assert_eq!(at, vec![0, 2000]);
        assert!(outstanding(&read(&p).unwrap().entries).is_empty());
    }

    #[test]
    fn a_journal_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        Journal::create(&p, header()).unwrap();
        assert!(Journal::create(&p, header()).is_err());
    }
}
