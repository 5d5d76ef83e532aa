//! Delays come from `simian_delay`: its sampler (distributions, truncated to [min, max])
//! and its precise sleep (tokio's timer alone rounds to the millisecond).

pub use simian_delay::{sleep_until_precise, Sampler};
