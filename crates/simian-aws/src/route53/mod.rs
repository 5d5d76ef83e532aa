//! Route53 weighted-record traffic shifts (Chaos Kong's DNS lever): move a
//! share of one weighted record set's weight to another of the same name,
//! both in one atomic change batch, and put the original weights back.
//!
//! ```text
//! let r53 = Route53::connect(&AwsOptions::default()).await?;
//! let original = read(&r53, &target).await?;          // dry run: the weights now
//! journal.write(&original)?;                          // write-ahead
//! set_share(&r53, &original, 0.5).await?;             // half of from's weight moved
//! // later, maybe in another process:
//! restore(&Route53::connect(&opts).await?, &original).await?;
//! ```
//!
//! Only `Weight` changes: every other field of a record set (TTL, values or
//! alias target, health check) is written back as it is at that moment, so
//! an edit made during the shift survives it. Restore never recreates a
//! record set someone deleted meanwhile; it reports it.

mod client;
mod records;
mod weights;

pub use client::{Route53, DEFAULT_REGION};
pub use records::{
    read, restore, set_share, SetWeight, WeightedTarget, WeightsRevert, SYNC_POLL, SYNC_TIMEOUT,
};
pub use weights::{weights_at, MAX_WEIGHT};
