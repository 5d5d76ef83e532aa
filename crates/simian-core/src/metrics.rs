//! The metrics every probe yields, computed from its observations over a window.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A metric a probe yields; the same set for every probe kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Successful observations / all observations (0..=1).
    SuccessRatio,
    /// Failed observations / all observations (0..=1).
    ErrorRatio,
    /// Successful observations per second.
    Rate,
    /// All observations per second.
    Throughput,
    /// Number of observations in the window.
    Count,
    /// Number of failed observations in the window.
    Errors,
    P50,
    P90,
    P95,
    P99,
    P999,
    Min,
    Max,
    Mean,
    /// The last numeric value observed (command output, query result).
    Value,
    /// Replication probes: share of the latest round of records visible in the other
    /// region at the read delay.
    Visible,
    /// Replication probes: records written, past the read delay, not yet visible.
    Queued,
    /// Replication probes: records never seen although later ones were (since the start).
    Lost,
}

/// What unit a metric is in, so assertions can be type-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Ratio,
    Latency,
    PerSecond,
    Count,
    Number,
}

impl Metric {
    pub const ALL: [Metric; 18] = [
        Metric::SuccessRatio,
        Metric::ErrorRatio,
        Metric::Rate,
        Metric::Throughput,
        Metric::Count,
        Metric::Errors,
        Metric::P50,
        Metric::P90,
        Metric::P95,
        Metric::P99,
        Metric::P999,
        Metric::Min,
        Metric::Max,
        Metric::Mean,
        Metric::Value,
        Metric::Visible,
        Metric::Queued,
        Metric::Lost,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Metric::SuccessRatio => "success_ratio",
            Metric::ErrorRatio => "error_ratio",
            Metric::Rate => "rate",
            Metric::Throughput => "throughput",
            Metric::Count => "count",
            Metric::Errors => "errors",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::P999 => "p999",
            Metric::Min => "min",
            Metric::Max => "max",
            Metric::Mean => "mean",
            Metric::Value => "value",
            Metric::Visible => "visible",
            Metric::Queued => "queued",
            Metric::Lost => "lost",
        }
    }

    pub fn kind(&self) -> MetricKind {
        match self {
            Metric::SuccessRatio | Metric::ErrorRatio | Metric::Visible => MetricKind::Ratio,
            Metric::Rate | Metric::Throughput => MetricKind::PerSecond,
            Metric::Count | Metric::Errors | Metric::Queued | Metric::Lost => MetricKind::Count,
            Metric::Value => MetricKind::Number,
            _ => MetricKind::Latency,
        }
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        Metric::ALL.iter().map(|m| m.name())
    }

    /// Gauges: a probe sets them, and a window reads the last value set by its end.
    pub const GAUGES: [Metric; 3] = [Metric::Visible, Metric::Queued, Metric::Lost];

    /// The probe kind that alone yields this metric, if only one does.
    pub fn only_from(&self) -> Option<&'static str> {
        Metric::GAUGES.contains(self).then_some("replication")
    }
}

impl FromStr for Metric {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or(())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Metric values over one window. Latencies are in seconds. A metric is
/// `None` when the window holds nothing to compute it from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub count: u64,
    pub errors: u64,
    /// Length of the window the rates were computed over, in seconds.
    pub span: f64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<f64>,
}

impl Metrics {
    pub fn get(&self, m: Metric) -> Option<f64> {
        let ok = self.count - self.errors;
        match m {
            Metric::SuccessRatio => (self.count > 0).then(|| ok as f64 / self.count as f64),
            Metric::ErrorRatio => (self.count > 0).then(|| self.errors as f64 / self.count as f64),
            Metric::Rate => (self.span > 0.0).then(|| ok as f64 / self.span),
            Metric::Throughput => (self.span > 0.0).then(|| self.count as f64 / self.span),
            Metric::Count => Some(self.count as f64),
            Metric::Errors => Some(self.errors as f64),
            Metric::P50 => self.p50,
            Metric::P90 => self.p90,
            Metric::P95 => self.p95,
            Metric::P99 => self.p99,
            Metric::P999 => self.p999,
            Metric::Min => self.min,
            Metric::Max => self.max,
            Metric::Mean => self.mean,
            Metric::Value => self.value,
            Metric::Visible => self.visible,
            Metric::Queued => self.queued,
            Metric::Lost => self.lost,
        }
    }

    /// Sets a gauge's value (see [`Metric::GAUGES`]); other metrics are computed, not set.
    pub fn set_gauge(&mut self, m: Metric, v: f64) {
        match m {
            Metric::Visible => self.visible = Some(v),
            Metric::Queued => self.queued = Some(v),
            Metric::Lost => self.lost = Some(v),
            _ => debug_assert!(false, "{m} is not a gauge"),
        }
    }
}

/// Formats a metric value in its unit: `12.3ms`, `99.50%`, `198.0/s`.
pub fn format_value(m: Metric, v: f64) -> String {
    match m.kind() {
        MetricKind::Latency => {
            if v >= 1.0 {
                format!("{v:.3}s")
            } else {
                format!("{:.2}ms", v * 1e3)
            }
        }
        MetricKind::Ratio => format!("{:.2}%", v * 100.0),
        MetricKind::PerSecond => format!("{v:.1}/s"),
        MetricKind::Count => format!("{v:.0}"),
        MetricKind::Number => format!("{v}"),
    }
}

impl Metric {
    pub fn format(&self, v: f64) -> String {
        format_value(*self, v)
    }
}
