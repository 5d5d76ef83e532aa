//! Shared vocabulary of simian: typed units (durations, percents, target
//! picks), probe observations and the metrics computed over them.
#![forbid(unsafe_code)]

mod metrics;
mod recorder;
mod units;

pub use metrics::{Metric, MetricKind, Metrics};
pub use recorder::{Observation, Recorder};
pub use units::{Dur, Percent, Pick, UnitError};
