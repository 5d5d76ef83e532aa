//! The EC2 zone kill (Chaos Gorilla on AWS): stop or terminate the opted-in
//! instances of one availability zone, all of them or a seeded sample.
//!
//! ```text
//! let ec2 = Ec2::connect(&AwsOptions::default()).await?;
//! let planned = plan(&ec2, &selector, Selection::All, seed).await?;   // dry run
//! let record = Ec2Revert::new(&ec2, Action::Stop, planned.targets.clone());
//! journal.write(&record)?;                                          // write-ahead
//! apply(&ec2, Action::Stop, &planned.targets).await?;
//! // later, maybe in another process:
//! revert(&Ec2::for_record(&record, AwsOptions::default()).await?, &record).await?;
//! ```

mod action;
mod client;
mod plan;
mod revert;
mod select;

pub use action::{
    apply, preflight, Action, Applied, StateChange, MAX_IDS_PER_CALL, PARALLEL_CALLS,
};
pub use client::Ec2;
pub use plan::{eligible, plan, Eligible, Instance, Planned};
pub use revert::{revert, revert_with, Ec2Revert, RevertOptions, Reverted};
pub use select::{pick, Selection, Selector, DEFAULT_OPT_IN};
