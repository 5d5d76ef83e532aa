//! Operators' answers to `confirm` steps: Enter in the run's own terminal, or
//! `simian continue RUN` from anywhere on the machine.
//!
//! While a step waits, the run keeps a marker `RUN.awaiting` beside its journal
//! `RUN.jsonl` (it holds the question); `simian continue` answers by writing
//! `RUN.continue` (who answered), which the run picks up and removes. A marker
//! is only there while a question is open, so an answer can never be taken for a
//! later step.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::exit;

/// How often a waiting run looks for `simian continue`'s answer.
const POLL: Duration = Duration::from_millis(200);

fn awaiting(journal: &Path) -> PathBuf {
    journal.with_extension("awaiting")
}

fn answer(journal: &Path) -> PathBuf {
    journal.with_extension("continue")
}

/// Whether this run can ask someone: its standard input is a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Waits for one answer to `message` and sends who gave it; ends when `done` is
/// cancelled (the step was answered, timed out, or the run ended). With `yes`, answers
/// at once.
pub fn ask(
    journal: PathBuf,
    message: String,
    yes: bool,
    tx: mpsc::UnboundedSender<String>,
    done: CancellationToken,
) {
    if yes {
        let _ = tx.send("--yes".into());
        return;
    }
    let run = run_name(&journal);
    let marker = awaiting(&journal);
    if let Err(e) = std::fs::write(&marker, format!("{message}\n")) {
        eprintln!(
            "warning: cannot write {}: {e}; only Enter here can confirm",
            marker.display()
        );
    }
    let terminal = interactive();
    eprintln!(
        "  → {}run `simian continue {run}` to go on; Ctrl-C aborts (every fault reverted)",
        if terminal {
            "press Enter here, or "
        } else {
            ""
        }
    );
    if terminal {
        let tx = tx.clone();
        let done = done.clone();
        // A blocking read cannot be cancelled; a line typed after the step is over is
        // dropped by the engine, which only takes answers given while it asks.
        std::thread::spawn(move || {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_ok() && !done.is_cancelled() {
                let _ = tx.send(format!("{} at the terminal", simian_engine::user()));
            }
        });
    }
    tokio::spawn(async move {
        let answered = answer(&journal);
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
            if let Ok(by) = std::fs::read_to_string(&answered) {
                let _ = std::fs::remove_file(&answered);
                let by = by.trim();
                let _ = tx.send(if by.is_empty() {
                    "simian continue".into()
                } else {
                    by.to_string()
                });
                break;
            }
        }
        let _ = std::fs::remove_file(&marker);
        let _ = std::fs::remove_file(&answered);
    });
}

/// A run's id: its journal's name without `.jsonl` (what `simian continue` takes).
pub(crate) fn run_name(journal: &Path) -> String {
    journal
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| journal.display().to_string())
}

/// `simian continue [RUN]`: answers the open `confirm` question of a run, named by its
/// id (its journal's name in STATE_DIR/runs), its journal's path, or, when only one
/// run is waiting, nothing.
pub fn continue_run(run: Option<&str>, state_dir: &Path) -> i32 {
    let runs = state_dir.join("runs");
    let journal = match run {
        Some(r) if r.ends_with(".jsonl") || r.contains('/') => PathBuf::from(r),
        Some(r) => runs.join(format!("{r}.jsonl")),
        None => {
            let waiting = waiting_runs(&runs);
            match waiting.as_slice() {
                [one] => one.clone(),
                [] => {
                    eprintln!(
                        "error: no run in {} waits for an operator\n  = hint: name the run: `simian continue RUN_ID` (or its journal path)",
                        runs.display()
                    );
                    return exit::NOT_RUN;
                }
                many => {
                    eprintln!("error: {} runs wait for an operator; name one:", many.len());
                    for j in many {
                        eprintln!("  simian continue {}", run_name(j));
                    }
                    return exit::NOT_RUN;
                }
            }
        }
    };
    let question = match std::fs::read_to_string(awaiting(&journal)) {
        Ok(q) => q,
        Err(_) => {
            eprintln!(
                "error: run {} is not waiting for an operator (no {})",
                run_name(&journal),
                awaiting(&journal).display()
            );
            return exit::NOT_RUN;
        }
    };
    let by = format!("{} with simian continue", simian_engine::user());
    if let Err(e) = std::fs::write(answer(&journal), &by) {
        eprintln!("error: cannot write {}: {e}", answer(&journal).display());
        return exit::NOT_RUN;
    }
    println!("confirmed: {} ({})", question.trim(), run_name(&journal));
    exit::HELD
}

fn waiting_runs(runs: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "awaiting"))
        .map(|p| p.with_extension("jsonl"))
        .collect();
    out.sort();
    out
}
