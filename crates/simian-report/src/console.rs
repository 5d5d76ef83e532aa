//! What a person watching the terminal sees: progress as it happens, then a summary.

use std::collections::BTreeMap;
use std::fmt::Write;

use simian_core::Metric;
use simian_engine::report::Verdict;
use simian_engine::{EventKind, Phase, RunEvent, RunReport, Would};

/// Turns events into progress lines; samples are shown at most once per `every_ms` per probe.
pub struct Live {
    every_ms: u64,
    last: BTreeMap<String, u64>,
    /// A leashed run: the phases say nothing is done.
    leashed: bool,
}

impl Live {
    pub fn new(every_ms: u64) -> Self {
        Live {
            every_ms,
            last: BTreeMap::new(),
            leashed: false,
        }
    }

    pub fn line(&mut self, ev: &RunEvent) -> Option<String> {
        let t = format!("[{:>7.1}s]", ev.at_ms as f64 / 1000.0);
        let s = match &ev.kind {
            EventKind::Started {
                experiment,
                journal,
                seed,
                leashed,
            } => {
                self.leashed = *leashed;
                let leash = match leashed {
                    true => " LEASHED: nothing will be injected, every action only logged;",
                    false => "",
                };
                format!("{t} running `{experiment}` (seed {seed});{leash} journal {journal}")
            }
            EventKind::Phase { phase } => format!(
                "{t} ── {} ──",
                match (phase, self.leashed) {
                    (Phase::Before, _) => "before: measuring steady state (baseline)",
                    (Phase::Method, false) => "method: injecting, hypothesis watched",
                    (Phase::Method, true) =>
                        "method (leashed): nothing injected, hypothesis watched",
                    (Phase::Revert, false) => "revert: undoing every fault",
                    (Phase::Revert, true) => "revert (leashed): what would be undone",
                    (Phase::After, _) => "after: the system must recover",
                }
            ),
            EventKind::Step { step } => format!("{t} step: {step}"),
            EventKind::Injected {
                fault,
                action,
                targets,
            } => {
                format!("{t} injected {fault}: {action} → {}", summarize(targets))
            }
            EventKind::Reverted { fault, actions } => {
                format!("{t} reverted {fault}: {}", summarize(actions))
            }
            EventKind::RevertFailed { fault, error } => {
                format!("{t} REVERT FAILED {fault}: {error}")
            }
            EventKind::Leashed { .. } => format!("{t} LEASHED {}", would(&ev.kind)),
            EventKind::Sample { probe, metrics } => {
                // Replication probes set gauges: worth a line even when nothing converged.
                let replication = metrics.queued.is_some();
                if metrics.count == 0 && !replication {
                    return None;
                }
                let last = self.last.get(probe).copied();
                if last.is_some_and(|l| ev.at_ms < l + self.every_ms) {
                    return None;
                }
                self.last.insert(probe.clone(), ev.at_ms);
                let f = |m: Metric| metrics.get(m).map_or("-".into(), |v| m.format(v));
                if replication {
                    return Some(format!(
                        "{t}   {probe}: visible {}  queued {}  lost {}  convergence p50 {}  p99 {}  (n={})",
                        f(Metric::Visible),
                        f(Metric::Queued),
                        f(Metric::Lost),
                        f(Metric::P50),
                        f(Metric::P99),
                        metrics.count
                    ));
                }
                format!(
                    "{t}   {probe}: ok {}  rate {}  p50 {}  p99 {}  (n={})",
                    f(Metric::SuccessRatio),
                    f(Metric::Rate),
                    f(Metric::P50),
                    f(Metric::P99),
                    metrics.count
                )
            }
            EventKind::Gate {
                fault,
                next,
                held,
                failing,
                readings,
            } => {
                let next = format!("{:.0}%", next * 100.0);
                if *held {
                    format!(
                        "{t} gate before {fault} {next}: the hypothesis holds ({})",
                        readings.join("; ")
                    )
                } else {
                    format!(
                        "{t} gate before {fault} {next}: FAILED ({})",
                        failing.join("; ")
                    )
                }
            }
            EventKind::Shifted {
                fault,
                share,
                next,
                wait_ms,
            } => {
                let then = match next {
                    Some(n) => format!("next {:.0}% in {}", n * 100.0, secs(*wait_ms)),
                    None => format!("for {}", secs(*wait_ms)),
                };
                format!(
                    "{t} {fault}: {:.0}% of the traffic moved; {then}",
                    share * 100.0
                )
            }
            EventKind::Breach { assertion, detail } => {
                format!("{t} hypothesis breached: {assertion} ({detail})")
            }
            EventKind::StopTripped { condition, detail } => {
                format!("{t} STOP: {condition} ({detail})")
            }
            EventKind::AwaitingOperator {
                message,
                timeout_ms,
            } => format!(
                "{t} CONFIRM: {message} (waiting for an operator; aborts in {})",
                simian_core::Dur(std::time::Duration::from_millis(*timeout_ms))
            ),
            EventKind::Confirmed { by } => format!("{t} confirmed by {by}"),
            EventKind::Aborting { reason } => format!("{t} aborting: {reason}"),
            EventKind::Finished { verdict, exit_code } => {
                format!("{t} finished: {verdict} (exit {exit_code})")
            }
        };
        Some(s)
    }
}

/// `would inject zone-down: SIGKILL → lab instance us-east-a-1`, for a `Leashed` event.
fn would(kind: &EventKind) -> String {
    let EventKind::Leashed {
        fault,
        would,
        action,
        targets,
        share,
    } = kind
    else {
        return String::new();
    };
    let on = summarize(targets);
    match would {
        Would::Inject => format!("would inject {fault}: {action} → {on}"),
        Would::Revert => format!("would revert {fault}: {action} → {on}"),
        Would::Shift => format!(
            "would shift {fault} to {:.0}% ({action} → {on})",
            share.unwrap_or_default() * 100.0
        ),
        Would::Restore => format!("would restore the original split of {fault} ({on})"),
    }
}

fn summarize(items: &[String]) -> String {
    match items.len() {
        0 => "nothing".into(),
        1..=4 => items.join(", "),
        n => format!("{}, … ({n} in all)", items[..3].join(", ")),
    }
}

/// The end-of-run summary: verdict, each assertion measured vs bound, faults, timings.
pub fn summary(r: &RunReport) -> String {
    let mut o = String::new();
    let mark = match r.verdict {
        Verdict::Held => "HELD",
        Verdict::Deviated => "DEVIATED",
        Verdict::Aborted => "ABORTED",
        Verdict::NotRun => "NOT RUN",
        Verdict::RevertFailed => "REVERT FAILED",
    };
    let _ = writeln!(o, "\n{} — {} (exit {})", r.experiment, mark, r.exit_code);
    if r.leashed {
        let _ = writeln!(
            o,
            "  LEASHED: nothing was injected; the verdict is the probes' alone"
        );
    }
    if let Some(reason) = &r.reason {
        let _ = writeln!(o, "  reason: {reason}");
    }
    if r.leashed {
        let _ = writeln!(o, "\n  would-be actions (none taken)");
        let mut any = false;
        for e in r
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Leashed { .. }))
        {
            any = true;
            let _ = writeln!(
                o,
                "  • {:>7.1}s  {}",
                e.at_ms as f64 / 1000.0,
                would(&e.kind)
            );
        }
        if !any {
            let _ = writeln!(o, "  (none: the method was not reached)");
        }
    }
    if !r.assertions.is_empty() {
        let _ = writeln!(o, "\n  hypothesis");
        for a in &r.assertions {
            let icon = match a.held {
                Some(true) => "✔",
                Some(false) => "✘",
                None => "?",
            };
            let when = a.first_breach_ms.map_or(String::new(), |ms| {
                format!(" (first breach at {:.1}s)", ms as f64 / 1000.0)
            });
            let _ = writeln!(
                o,
                "  {icon} {:<7} {:<40} {}{when}",
                a.phase.name(),
                a.assertion,
                a.detail
            );
        }
    }
    if !r.faults.is_empty() {
        let _ = writeln!(o, "\n  faults");
        for f in &r.faults {
            let at = |ms: Option<u64>| {
                ms.map_or("-".to_string(), |m| format!("{:.1}s", m as f64 / 1000.0))
            };
            let state = match &f.revert_error {
                Some(e) => format!("REVERT FAILED: {e}"),
                None if r.leashed => "not injected (leashed)".to_string(),
                None => format!(
                    "injected {}, reverted {}",
                    at(f.injected_ms),
                    at(f.reverted_ms)
                ),
            };
            let _ = writeln!(
                o,
                "  • {:<20} {} on {} — {state}",
                f.name,
                f.plan.action,
                f.plan.reach()
            );
        }
    }
    if let Some(s) = &r.stop {
        let took = s.reverted_ms.map_or("-".into(), |ms| {
            format!("{}ms", ms.saturating_sub(s.detected_ms))
        });
        let _ = writeln!(
            o,
            "\n  stop condition `{}` tripped at {:.1}s ({}); all faults reverted {took} later",
            s.condition,
            s.detected_ms as f64 / 1000.0,
            s.detail
        );
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| {
            format!(
                "{} {:.1}s",
                p.phase.name(),
                (p.end_ms.saturating_sub(p.start_ms)) as f64 / 1000.0
            )
        })
        .collect();
    if let Some(rec) = &r.recovery {
        let took = rec
            .time_to_recover
            .map_or("not recovered".to_string(), |t| format!("{t:.2}s"));
        let _ = writeln!(
            o,
            "\n  time to recover: {took} (bound {}s; {})",
            rec.within,
            rec.assertions.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\n  timings: {} · total {:.1}s",
        phases.join(" · "),
        r.duration_ms as f64 / 1000.0
    );
    let _ = writeln!(o, "  journal: {}", r.journal);
    if r.verdict == Verdict::RevertFailed {
        let _ = writeln!(
            o,
            "  something may still be broken: run `simian recover {}`",
            r.journal
        );
    }
    o
}

/// `30s`, `1.5s`, `2m`.
fn secs(ms: u64) -> String {
    simian_core::Dur(std::time::Duration::from_millis(ms)).to_string()
}
