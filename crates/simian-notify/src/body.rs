//! What a notification says, in each format.

use serde::Serialize;
use serde_json::{json, Value};
use simian_experiment::{Moment, NotifyFormat};

/// The facts of one moment of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// `start`, `abort` or `verdict`.
    pub event: Moment,
    pub experiment: String,
    pub run_id: String,
    pub host: String,
    pub user: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub journal: String,
    /// With the verdict: `held`, `deviated`, `aborted`, `not run`, `revert failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it aborted or was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The assertions that did not hold, as `during: sps.p99 < 250ms (measured 312ms)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Seconds, with `recovers_within`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_recover: Option<f64>,
}

/// The JSON body of `notice` in `format`.
pub fn body(format: NotifyFormat, notice: &Notice) -> Value {
    match format {
        NotifyFormat::Generic => json!({ "simian": notice }),
        NotifyFormat::Slack => json!({ "text": slack_text(notice) }),
    }
}

/// Slack's mrkdwn: one headline, then details.
fn slack_text(n: &Notice) -> String {
    let who = format!("`{}` on {} by {}", n.run_id, n.host, n.user);
    let mut text = match n.event {
        Moment::Start => format!(":monkey_face: *{}* started: {who}", n.experiment),
        Moment::Abort => format!(
            ":rotating_light: *{}* is aborting, every fault being reverted: {}\n{who}",
            n.experiment,
            n.reason.as_deref().unwrap_or("no reason given")
        ),
        Moment::Verdict => {
            let verdict = n.verdict.as_deref().unwrap_or("?");
            let icon = match n.exit_code {
                Some(0) => ":white_check_mark:",
                Some(4) => ":fire:",
                _ => ":x:",
            };
            let mut t = format!(
                "{icon} *{}*: {verdict} (exit {})\n{who}",
                n.experiment,
                n.exit_code.map_or("?".into(), |c| c.to_string())
            );
            if let Some(r) = &n.reason {
                t.push_str(&format!("\n{r}"));
            }
            if let Some(ttr) = n.time_to_recover {
                t.push_str(&format!("\ntime to recover: {ttr:.1}s"));
            }
            t
        }
    };
    for f in n.failed.iter().take(10) {
        text.push_str(&format!("\n• {f}"));
    }
    if n.failed.len() > 10 {
        text.push_str(&format!("\n… and {} more", n.failed.len() - 10));
    }
    text.push_str(&format!("\njournal: `{}`", n.journal));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: Moment) -> Notice {
        Notice {
            event,
            experiment: "chaos-kong".into(),
            run_id: "20261203T101500Z-chaos-kong-3f2a".into(),
            host: "gameday-1".into(),
            user: "alice".into(),
            at: "2026-12-03T10:15:00Z".into(),
            journal: "/var/lib/simian/runs/x.jsonl".into(),
            verdict: None,
            exit_code: None,
            reason: None,
            failed: vec![],
            time_to_recover: None,
        }
    }

    #[test]
    fn generic_carries_every_fact_under_one_key() {
        let mut n = notice(Moment::Verdict);
        n.verdict = Some("deviated".into());
        n.exit_code = Some(1);
        n.failed = vec!["during: sps.p99 < 250ms (measured 312ms)".into()];
        let b = body(NotifyFormat::Generic, &n);
        assert_eq!(b["simian"]["event"], "verdict");
        assert_eq!(b["simian"]["verdict"], "deviated");
        assert_eq!(b["simian"]["exit_code"], 1);
        assert_eq!(
            b["simian"]["failed"][0],
            "during: sps.p99 < 250ms (measured 312ms)"
        );
        assert!(
            b["simian"].get("reason").is_none(),
            "absent facts are left out"
        );
    }

    #[test]
    fn slack_is_a_text_message_that_says_what_happened() {
        let mut n = notice(Moment::Abort);
        n.reason = Some("stop condition `sps.success_ratio < 80%` tripped".into());
        let b = body(NotifyFormat::Slack, &n);
        let text = b["text"].as_str().unwrap();
        assert!(
            text.starts_with(":rotating_light: *chaos-kong* is aborting"),
            "{text}"
        );
        assert!(
            text.contains("stop condition `sps.success_ratio < 80%` tripped"),
            "{text}"
        );
        assert_eq!(b.as_object().unwrap().len(), 1, "only `text`: {b}");
    }

    #[test]
    fn a_long_list_of_failures_is_cut_in_slack() {
        let mut n = notice(Moment::Verdict);
        n.exit_code = Some(1);
        n.failed = (0..25).map(|i| format!("a{i}")).collect();
        let text = body(NotifyFormat::Slack, &n)["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.contains("• a9") && !text.contains("• a10"), "{text}");
        assert!(text.contains("… and 15 more"), "{text}");
    }
}
