//! How a delay distribution is written, in experiments (YAML) and in the proxy API (JSON).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use simian_core::Dur;

/// A latency distribution, keyed by family. Durations carry units (`20ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Always `value`.
    Constant { value: Dur },
    /// Uniform between `min` and `max`.
    Uniform { min: Dur, max: Dur },
    /// Normal with `mean` and `stddev`.
    Normal { mean: Dur, stddev: Dur },
    /// Log-normal, by `median` and `sigma` (of the log), or by `p50` and `p99`.
    Lognormal {
        #[serde(default)]
        median: Option<Dur>,
        #[serde(default)]
        sigma: Option<f64>,
        #[serde(default)]
        p50: Option<Dur>,
        #[serde(default)]
        p99: Option<Dur>,
    },
    /// Pareto with minimum `scale` and tail index `shape` (smaller = longer tail).
    Pareto { scale: Dur, shape: f64 },
    /// Exponential with `mean`.
    Exponential { mean: Dur },
    /// Gamma with `shape` and `scale`.
    Gamma { shape: f64, scale: Dur },
    /// Weibull with `scale` and `shape`.
    Weibull { scale: Dur, shape: f64 },
    /// Piecewise linear between given percentiles, e.g. `{p0: 1ms, p50: 10ms, p99: 80ms, p100: 200ms}`.
    Empirical { percentiles: BTreeMap<String, Dur> },
}

/// A distribution with the range its samples are truncated to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelaySpec {
    pub distribution: Distribution,
    /// Samples below are redrawn (then clamped). Default 0.
    #[serde(default)]
    pub min: Option<Dur>,
    /// Samples above are redrawn (then clamped). Default 60s.
    #[serde(default)]
    pub max: Option<Dur>,
}
