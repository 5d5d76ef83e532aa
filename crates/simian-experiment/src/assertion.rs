//! Assertions over probe metrics: `users.p99 < 250ms`,
//! `users.success_ratio >= 99.5%`, `users.rate >= 90% of baseline`.

use std::fmt;

use serde::Serialize;
use simian_core::{Dur, Metric, MetricKind, Metrics, Percent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            Op::Ne => (a - b).abs() > 1e-9 * b.abs().max(1.0),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// What the metric is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// A value in the metric's unit (seconds for latencies, a fraction for ratios).
    Absolute(f64),
    /// A fraction of the metric's value over the baseline window.
    OfBaseline(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assertion {
    pub text: String,
    pub probe: String,
    pub metric: Metric,
    pub op: Op,
    pub bound: Bound,
}

/// A parse problem, with the character offset and width of the bad token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionError {
    pub offset: usize,
    pub width: usize,
    pub message: String,
    pub hint: Option<String>,
}

const GRAMMAR_HINT: &str =
    "write `PROBE.METRIC OP VALUE`, e.g. `users.p99 < 250ms` or `users.rate >= 90% of baseline`";

impl Assertion {
    /// Parses an assertion. Probe names are checked by the caller; metric names and units here.
    pub fn parse(text: &str) -> Result<Assertion, AssertionError> {
        let err =
            |offset: usize, width: usize, message: String, hint: Option<String>| AssertionError {
                offset,
                width: width.max(1),
                message,
                hint,
            };
        let lhs_end = text
            .find(|c: char| c.is_whitespace() || "<>=!".contains(c))
            .unwrap_or(text.len());
        let lhs = &text[..lhs_end];
        let lead = lhs.len() - lhs.trim_start().len();
        let Some((probe, metric)) = lhs.trim().split_once('.') else {
            return Err(err(
                lead,
                lhs.trim().len(),
                format!("expected `PROBE.METRIC`, found `{}`", lhs.trim()),
                Some(GRAMMAR_HINT.into()),
            ));
        };
        let metric_at = lead + probe.len() + 1;
        let metric: Metric = metric.parse().map_err(|_| {
            let names: Vec<&str> = Metric::names().collect();
            let hint = match crate::diag::did_you_mean(metric, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? metrics are {}", names.join(", ")),
                None => format!("metrics are {}", names.join(", ")),
            };
            err(
                metric_at,
                metric.len(),
                format!("unknown metric `{metric}`"),
                Some(hint),
            )
        })?;
        let rest = &text[lhs_end..];
        let op_at = lhs_end + (rest.len() - rest.trim_start().len());
        let rest = rest.trim_start();
        let (op, op_len) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(s, _)| rest.starts_with(s))
        .map(|(s, o)| (o, s.len()))
        .ok_or_else(|| {
            err(
                op_at,
                1,
                "expected a comparison: <, <=, >, >=, ==, !=".into(),
                Some(GRAMMAR_HINT.into()),
            )
        })?;
        let after = &rest[op_len..];
        let rhs_at = op_at + op_len + (after.len() - after.trim_start().len());
        let rhs = after.trim();
        if rhs.is_empty() {
            return Err(err(
                rhs_at,
                1,
                "expected a value after the comparison".into(),
                Some(GRAMMAR_HINT.into()),
            ));
        }
        let bound =
            parse_bound(metric, rhs).map_err(|(m, h)| err(rhs_at, rhs.len(), m, Some(h)))?;
        Ok(Assertion {
            text: text.trim().to_string(),
            probe: probe.to_string(),
            metric,
            op,
            bound,
        })
    }

    /// The bound in the metric's unit, given the baseline metrics when relative.
    pub fn bound_value(&self, baseline: Option<&Metrics>) -> Option<f64> {
        match self.bound {
            Bound::Absolute(v) => Some(v),
            Bound::OfBaseline(f) => baseline.and_then(|b| b.get(self.metric)).map(|b| b * f),
        }
    }

    /// Judges the assertion; `None` when there is nothing to judge (no data).
    pub fn check(&self, m: &Metrics, baseline: Option<&Metrics>) -> Check {
        let measured = m.get(self.metric);
        let bound = self.bound_value(baseline);
        let held = match (measured, bound) {
            (Some(v), Some(b)) => Some(self.op.apply(v, b)),
            _ => None,
        };
        Check {
            measured,
            bound,
            held,
        }
    }

    /// `measured 12.3ms, bound < 250ms`-style text for reports.
    pub fn describe(&self, c: &Check) -> String {
        let v = c
            .measured
            .map_or("no data".to_string(), |v| self.metric.format(v));
        let b = c
            .bound
            .map_or("no baseline".to_string(), |b| self.metric.format(b));
        format!("measured {v}, expected {} {b}", self.op.as_str())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Check {
    pub measured: Option<f64>,
    pub bound: Option<f64>,
    pub held: Option<bool>,
}

fn parse_bound(metric: Metric, rhs: &str) -> Result<Bound, (String, String)> {
    let kind = metric.kind();
    if let Some(p) = rhs.strip_suffix("of baseline") {
        let pct: Percent = p.trim().parse().map_err(|_| {
            (
                format!(
                    "expected a percent before `of baseline`, found `{}`",
                    p.trim()
                ),
                "e.g. `95% of baseline`".to_string(),
            )
        })?;
        return Ok(Bound::OfBaseline(pct.fraction()));
    }
    if rhs.ends_with('%') {
        let pct: Percent = rhs
            .parse()
            .map_err(|e: simian_core::UnitError| (e.to_string(), GRAMMAR_HINT.to_string()))?;
        return match kind {
            MetricKind::Ratio => Ok(Bound::Absolute(pct.fraction())),
            _ => Err((
                format!("a bare percent does not fit `{metric}`"),
                format!("percents compare ratios; for `{metric}` write an absolute value or `N% of baseline`"),
            )),
        };
    }
    if let Some(num) = rhs.strip_suffix("/s") {
        return match (kind, num.trim().parse::<f64>()) {
            (MetricKind::PerSecond, Ok(v)) => Ok(Bound::Absolute(v)),
            (MetricKind::PerSecond, Err(_)) => {
                Err((format!("invalid rate `{rhs}`"), "e.g. `180/s`".into()))
            }
            _ => Err((
                format!("`{rhs}` is a rate but `{metric}` is not"),
                unit_hint(metric),
            )),
        };
    }
    if let Ok(v) = rhs.parse::<f64>() {
        return match kind {
            MetricKind::Latency => Err((
                format!("`{metric}` is a latency and needs a unit"),
                format!("e.g. `{metric} < 250ms`"),
            )),
            MetricKind::Ratio if !(0.0..=1.0).contains(&v) => Err((
                format!("`{metric}` is a ratio between 0 and 1, but the bound is {v}"),
                "write a fraction like `0.995` or a percent like `99.5%`".into(),
            )),
            _ => Ok(Bound::Absolute(v)),
        };
    }
    if let Ok(d) = rhs.parse::<Dur>() {
        return match kind {
            MetricKind::Latency => Ok(Bound::Absolute(d.as_secs_f64())),
            _ => Err((
                format!("`{rhs}` is a duration but `{metric}` is not a latency"),
                unit_hint(metric),
            )),
        };
    }
    Err((format!("cannot read `{rhs}` as a value"), unit_hint(metric)))
}

fn unit_hint(metric: Metric) -> String {
    match metric.kind() {
        MetricKind::Latency => format!("`{metric}` takes a duration, e.g. `250ms`"),
        MetricKind::Ratio => {
            format!("`{metric}` takes a fraction or percent, e.g. `0.995` or `99.5%`")
        }
        MetricKind::PerSecond => {
            format!("`{metric}` takes a number per second, e.g. `180` or `90% of baseline`")
        }
        MetricKind::Count => format!("`{metric}` takes a number, e.g. `0`"),
        MetricKind::Number => format!("`{metric}` takes a number"),
    }
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_baselines() {
        let a = Assertion::parse("users.p99 < 250ms").unwrap();
        assert_eq!(
            (a.probe.as_str(), a.metric, a.op, a.bound),
            ("users", Metric::P99, Op::Lt, Bound::Absolute(0.25))
        );
        let a = Assertion::parse("users.success_ratio >= 99.5%").unwrap();
        assert_eq!(a.bound, Bound::Absolute(0.995));
        let a = Assertion::parse("users.rate>=90% of baseline").unwrap();
        assert_eq!(a.bound, Bound::OfBaseline(0.9));
        let a = Assertion::parse("users.rate > 180/s").unwrap();
        assert_eq!(a.bound, Bound::Absolute(180.0));
    }

    #[test]
    fn points_at_the_bad_token() {
        let e = Assertion::parse("users.p98 < 250ms").unwrap_err();
        assert_eq!((e.offset, e.width), (6, 3));
        assert!(e.hint.unwrap().starts_with("did you mean `p9"));
        let e = Assertion::parse("users.p99 < 250").unwrap_err();
        assert_eq!(e.offset, 12);
        assert!(e.message.contains("needs a unit"));
        let e = Assertion::parse("users.success_ratio > 30s").unwrap_err();
        assert!(e.message.contains("is a duration"));
        let e = Assertion::parse("users.p99 ~ 3").unwrap_err();
        assert_eq!(e.offset, 10);
        assert!(Assertion::parse("users < 3").is_err());
    }

    #[test]
    fn checks_against_baseline() {
        let a = Assertion::parse("u.rate >= 90% of baseline").unwrap();
        let base = Metrics {
            count: 100,
            errors: 0,
            span: 1.0,
            ..Default::default()
        };
        let now = Metrics {
            count: 95,
            errors: 0,
            span: 1.0,
            ..Default::default()
        };
        let c = a.check(&now, Some(&base));
        assert_eq!(c.held, Some(true));
        assert_eq!(a.describe(&c), "measured 95.0/s, expected >= 90.0/s");
        let low = Metrics {
            count: 80,
            errors: 0,
            span: 1.0,
            ..Default::default()
        };
        assert_eq!(a.check(&low, Some(&base)).held, Some(false));
        assert_eq!(a.check(&low, None).held, None);
    }
}
