//! Region severing with network ACLs (split-brain): for each VPC of each
//! side, every network ACL of that VPC gets a DENY entry (all protocols) per
//! CIDR block of the other side, ingress and/or egress.
//!
//! ```text
//! let planned = plan(&[east, west], Direction::Both, &base).await?;  // dry run
//! let record = record(&planned, &base);
//! journal.write(&record)?;                                          // write-ahead
//! apply(&record, &base).await?;
//! // later, maybe in another process:
//! revert(&record, &AwsOptions::default()).await?;
//! ```
//!
//! Why entries in place, not FIS's "clone the ACL and swap the subnet
//! associations": the journal lists exactly what was added; no subnet is
//! ever re-associated, so a crash midway leaves each subnet on its own ACL;
//! revert is per entry and idempotent. The cost is the ACL rule quota (20 per
//! direction by default) and room in the rule numbers: rules are evaluated
//! lowest first, so each deny takes the lowest free number below the ACL's
//! first ALLOW of that direction (denies already there, like the default
//! 32767, are no obstacle: a deny before ours only denies more). Too little
//! room or quota, a side matching no VPC, a VPC on both sides, or sides'
//! CIDRs overlapping fail the plan, naming the culprit; nothing changes.
//! Revert deletes an entry only if it is still exactly what was added.

mod apply;
mod cidr;
mod describe;
mod plan;
mod revert;

pub use apply::{apply, record, AclEntry, NaclRevert};
pub use plan::{plan, Direction, NaclPlan, Side, Vpc, RULES_PER_DIRECTION};
pub use revert::{revert, NaclReverted};
