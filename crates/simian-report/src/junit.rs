//! JUnit XML: one testcase per assertion and phase, plus the stop conditions
//! and the revert, so CI shows exactly which check failed and by how much.

use std::fmt::Write;

use simian_engine::report::Verdict;
use simian_engine::RunReport;

use crate::html::esc;

pub fn render(r: &RunReport) -> String {
    let mut cases = Vec::new();
    for a in &r.assertions {
        let name = format!("{}: {}", a.phase.name(), a.assertion);
        let body = match a.held {
            Some(true) => String::new(),
            Some(false) => failure(
                "hypothesis breached",
                &format!("`{}` {} phase: {}", a.assertion, a.phase.name(), a.detail),
            ),
            None => failure(
                "nothing to judge",
                &format!("`{}` {} phase: {}", a.assertion, a.phase.name(), a.detail),
            ),
        };
        cases.push((format!("{}.hypothesis", r.experiment), name, body));
    }
    let stop_body = match (&r.stop, r.verdict) {
        (Some(s), _) => failure(
            "stop condition tripped",
            &format!("`{}` tripped: {}", s.condition, s.detail),
        ),
        (None, Verdict::Aborted) => failure("aborted", r.reason.as_deref().unwrap_or("aborted")),
        (None, Verdict::NotRun) => failure("not run", r.reason.as_deref().unwrap_or("not run")),
        _ => String::new(),
    };
    cases.push((
        format!("{}.run", r.experiment),
        "stop conditions and guards".into(),
        stop_body,
    ));
    let revert_body = match r.verdict {
        Verdict::RevertFailed => format!(
            "<error message=\"revert failed\">{}</error>",
            esc(&format!(
                "{}; run `simian recover {}`",
                r.reason.as_deref().unwrap_or("a revert failed"),
                r.journal
            ))
        ),
        _ => String::new(),
    };
    cases.push((
        format!("{}.run", r.experiment),
        "every fault reverted".into(),
        revert_body,
    ));

    let failures = cases.iter().filter(|c| c.2.starts_with("<failure")).count();
    let errors = cases.iter().filter(|c| c.2.starts_with("<error")).count();
    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(o, "<testsuites name=\"simian\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">", cases.len(), r.duration_ms as f64 / 1000.0);
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\" timestamp=\"{}\">",
        esc(&format!(
            "{}{}",
            r.experiment,
            if r.leashed { " (leashed)" } else { "" }
        )),
        cases.len(),
        r.duration_ms as f64 / 1000.0,
        esc(&r.started_at)
    );
    let _ = writeln!(o, "    <properties>");
    for (k, v) in [
        ("verdict", r.verdict.name().to_string()),
        ("exit_code", r.exit_code.to_string()),
        ("seed", r.seed.to_string()),
        ("journal", r.journal.clone()),
        ("file", r.file.clone()),
    ] {
        let _ = writeln!(o, "      <property name=\"{k}\" value=\"{}\"/>", esc(&v));
    }
    if r.leashed {
        // Nothing was injected: the cases judge the probes alone.
        let _ = writeln!(o, "      <property name=\"leashed\" value=\"true\"/>");
    }
    let _ = writeln!(o, "    </properties>");
    for (class, name, body) in &cases {
        if body.is_empty() {
            let _ = writeln!(
                o,
                "    <testcase classname=\"{}\" name=\"{}\"/>",
                esc(class),
                esc(name)
            );
        } else {
            let _ = writeln!(
                o,
                "    <testcase classname=\"{}\" name=\"{}\">\n      {body}\n    </testcase>",
                esc(class),
                esc(name)
            );
        }
    }
    let _ = writeln!(o, "  </testsuite>\n</testsuites>");
    o
}

fn failure(kind: &str, msg: &str) -> String {
    format!(
        "<failure message=\"{}\" type=\"{}\">{}</failure>",
        esc(msg),
        esc(kind),
        esc(msg)
    )
}
