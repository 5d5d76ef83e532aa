//! How a delay distribution is written, in experiments (YAML) and in the proxy API (JSON).
//!
//! A family is a one-key map (serde's external tagging), durations carry units:
//!
//! ```yaml
//! distribution: { lognormal: { median: 20ms, sigma: 0.5 } }
//! min: 0s      # optional, default 0s
//! max: 1s      # optional, default 60s
//! ```
//!
//! ```json
//! {"distribution": {"pareto": {"scale": "5ms", "shape": 2.5}}, "max": "1s"}
//! ```
//!
//! (The experiment loader goes YAML → JSON value → serde; plain `serde_yaml` would want
//! its `!lognormal` tag syntax instead of the one-key map.)

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
    /// Log-normal, by `median` and `sigma` (the standard deviation of the log), or by `p50`
    /// and `p99` (then `sigma = ln(p99/p50) / z₀.₉₉`, z₀.₉₉ ≈ 2.326). Exactly one pair.
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
    /// Pareto with minimum `scale` and tail index `shape` (smaller = longer tail; the mean
    /// is infinite for `shape ≤ 1` and the variance for `shape ≤ 2`, so bound it with `max`).
    Pareto { scale: Dur, shape: f64 },
    /// Exponential with `mean`.
    Exponential { mean: Dur },
    /// Gamma with `shape` and `scale`.
    Gamma { shape: f64, scale: Dur },
    /// Weibull with `scale` and `shape` (`shape` 1 is the exponential; below 1, a longer tail).
    Weibull { scale: Dur, shape: f64 },
    /// Piecewise linear between given percentiles (the inverse CDF is interpolated
    /// linearly), e.g. `{p0: 1ms, p50: 10ms, p99: 80ms, p100: 200ms}`. Keys are `p` and a
    /// number from 0 to 100 (`p50`, `p99.9`); at least two; values must not decrease.
    /// Missing `p0`/`p100` default to the lowest/highest given value: with `{p50: 10ms,
    /// p99: 80ms}`, half of all delays are exactly 10ms and 1% exactly 80ms.
    Empirical { percentiles: BTreeMap<String, Dur> },
}

/// A distribution with the range its samples are truncated to (see
/// [`crate::sampler`] for how: redrawn up to 64 times, then clamped).
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
