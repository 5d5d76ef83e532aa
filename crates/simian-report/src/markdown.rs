//! A Markdown summary for CI pages (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab, PR
//! comments): the verdict, each assertion measured against its bound, the faults, the
//! stop condition and time to recover. GitHub-flavoured tables; no HTML.

use std::fmt::Write as _;

use simian_engine::{RunReport, Verdict};

/// The summary of one run.
pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let icon = match r.verdict {
        Verdict::Held => "✅",
        Verdict::Deviated => "❌",
        Verdict::Aborted => "🛑",
        Verdict::NotRun => "⚪",
        Verdict::RevertFailed => "🚨",
    };
    let _ = writeln!(
        o,
        "### {icon} {}: {} (exit {})\n",
        cell(&r.experiment),
        r.verdict.name(),
        r.exit_code
    );
    if r.leashed {
        let _ = writeln!(
            o,
            "> **Leashed**: nothing was injected; every action was only logged at the time it would have been taken.\n"
        );
    }
    if let Some(reason) = &r.reason {
        let _ = writeln!(o, "> {}\n", cell(reason));
    }
    if !r.assertions.is_empty() {
        let _ = writeln!(o, "| | phase | assertion | measured |\n|---|---|---|---|");
        for a in &r.assertions {
            let mark = match a.held {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "❔",
            };
            let when = a.first_breach_ms.map_or(String::new(), |ms| {
                format!(" (first breach at {:.1}s)", ms as f64 / 1000.0)
            });
            let _ = writeln!(
                o,
                "| {mark} | {} | `{}` | {}{when} |",
                a.phase.name(),
                cell(&a.assertion),
                cell(&a.detail)
            );
        }
        o.push('\n');
    }
    if !r.faults.is_empty() {
        let _ = writeln!(
            o,
            "| fault | action | targets | injected | reverted |\n|---|---|---|---|---|"
        );
        let at = |ms: Option<u64>| {
            ms.map_or("–".to_string(), |m| format!("{:.1}s", m as f64 / 1000.0))
        };
        for f in &r.faults {
            let reverted = match &f.revert_error {
                Some(e) => format!("**revert failed**: {}", cell(e)),
                None => at(f.reverted_ms),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {reverted} |",
                cell(&f.name),
                cell(&f.plan.action),
                cell(&f.plan.reach()),
                at(f.injected_ms)
            );
        }
        o.push('\n');
    }
    if let Some(s) = &r.stop {
        let took = s.reverted_ms.map_or("–".into(), |ms| {
            format!("{} ms", ms.saturating_sub(s.detected_ms))
        });
        let _ = writeln!(
            o,
            "Stop condition `{}` tripped at {:.1}s ({}); every fault reverted {took} later.\n",
            cell(&s.condition),
            s.detected_ms as f64 / 1000.0,
            cell(&s.detail)
        );
    }
    if let Some(rec) = &r.recovery {
        let took = rec
            .time_to_recover
            .map_or("**not recovered**".to_string(), |t| format!("**{t:.2}s**"));
        let _ = writeln!(o, "Time to recover: {took} (bound {}s).\n", rec.within);
    }
    let _ = writeln!(
        o,
        "Total {:.1}s · seed `{}` · journal `{}`",
        r.duration_ms as f64 / 1000.0,
        r.seed,
        cell(&r.journal)
    );
    if r.verdict == Verdict::RevertFailed {
        let _ = writeln!(
            o,
            "\nSomething may still be broken: run `simian recover {}`.",
            cell(&r.journal)
        );
    }
    o
}

/// Text safe inside a table cell: pipes escaped, lines joined.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_escape_pipes_and_newlines() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
    }
}
