//! Delays drawn from statistical distributions (sampled with `rand_distr`,
//! truncated to a documented range), and a timer precise below the millisecond.
#![forbid(unsafe_code)]

mod spec;

pub use spec::{DelaySpec, Distribution};
