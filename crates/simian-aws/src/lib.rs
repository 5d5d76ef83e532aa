//! AWS fault backends for simian, on the official `aws-sdk-*` crates: for now
//! the EC2 zone kill (stop or terminate the opted-in instances of one
//! availability zone). The SDKs live in this crate alone so the rest of the
//! workspace builds fast.
//!
//! Every fault is planned (targets resolved, nothing changed), recorded (a
//! serialisable revert record, written to the journal before anything
//! changes) and applied; reverting needs only the record, so it can run in
//! another process, and is idempotent.
#![forbid(unsafe_code)]

mod calls;
mod config;
pub mod ec2;
mod error;

pub use aws_sdk_ec2::config::Credentials;
pub use calls::ApiCalls;
pub use config::{load_sdk_config, AwsOptions, DEFAULT_MAX_ATTEMPTS};
pub use error::AwsError;
