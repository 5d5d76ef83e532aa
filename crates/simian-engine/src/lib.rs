//! The experiment engine: phases, continuous hypothesis, stop conditions,
//! the write-ahead journal, and recovery from it.
#![forbid(unsafe_code)]

mod engine;
pub mod events;
pub mod journal;
mod plan;
mod recover;
pub mod report;
mod run;

pub use engine::{execute, execute_guarded, Outcome, Prepared};
pub use events::{EventKind, Phase, RunEvent, Would};
pub use plan::{plan, Planned};
pub use recover::{recover, recover_as, Recovered};
pub use report::{RunReport, Verdict};
pub use run::{prepare, run_id, sha256_hex, user, PrepareError, RunOptions};
