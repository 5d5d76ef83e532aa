//! Delays drawn from statistical distributions, and a timer precise below the millisecond.
//!
//! - [`DelaySpec`] / [`Distribution`]: how a delay is written (YAML in experiments, JSON in
//!   the proxy API), e.g. `{distribution: {lognormal: {median: 20ms, sigma: 0.5}}, max: 1s}`.
//! - [`Sampler`]: a checked spec (every problem reported at once) that draws delays with
//!   `rand_distr`, truncated to `[min, max]` (see [`sampler`] for how), and knows the exact
//!   CDF, quantiles and mean of what it draws, plus Toxiproxy's closest `latency ± jitter`.
//! - [`sleep_precise`] / [`sleep_until_precise`]: sleeps that end within a few µs of the
//!   deadline (tokio's own timer rounds to 1 ms); see [`timer`] for the design.
//! - [`stats`]: Kolmogorov–Smirnov statistics for checking delays against a target.
#![forbid(unsafe_code)]

mod family;
pub mod sampler;
mod spec;
mod special;
pub mod stats;
pub mod timer;

pub use family::Z99;
pub use sampler::{check, Sampler};
pub use spec::{DelaySpec, Distribution};
pub use timer::{sleep_precise, sleep_until_precise};
