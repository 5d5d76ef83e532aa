//! Scheduled game days: deciding what is due, and running it safely.
//!
//! A schedule file names experiments with a trigger each (a 5-field cron, or a mean time
//! between runs drawn at random inside the windows, Chaos Monkey style), and the rules
//! every start must pass: windows, blackout days, a minimum gap between runs, a kill
//! switch. The decisions are pure functions of the time, the runs on disk and a seed
//! ([`decide`]); running one is a child process of the same binary (`simian run FILE`),
//! under a lock so only one runs at a time ([`lock`]), watched by the kill switch
//! ([`runner`]). This crate does not link the engine: a run's isolation and exit code
//! come from the process boundary.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod history;
pub mod kill;
pub mod lock;
pub mod random;
pub mod runner;
pub mod window;

pub use config::{load, Experiment, Invalid, Schedule, Trigger};
pub use daemon::{Clock, SystemClock};
pub use decide::{Block, Candidate, Past};
