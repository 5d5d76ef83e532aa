//! Undoing a cut from its record alone: delete each recorded entry that is
//! still exactly what was added. Idempotent, and safe in another process.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::ec2::{Ec2, PARALLEL_CALLS};
use crate::nacl::apply::{by_region, record_options};
use crate::nacl::describe::{self, Clients, Existing};
use crate::nacl::{AclEntry, NaclRevert};
use crate::{AwsError, AwsOptions};

/// What a revert did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaclReverted {
    /// Entries deleted.
    pub removed: usize,
    /// Entries not there any more (removed before, or their ACL is gone).
    pub absent: usize,
    /// Entries at a recorded number that are no longer what was added: left
    /// alone. Each line names the entry and what is there now.
    pub changed: Vec<String>,
}

impl NaclReverted {
    /// One line per kind of outcome, for reports.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        let plural = |n: usize| if n == 1 { "entry" } else { "entries" };
        if self.removed > 0 {
            out.push(format!(
                "{} DENY {} removed from the network ACLs",
                self.removed,
                plural(self.removed)
            ));
        }
        if self.absent > 0 {
            out.push(format!(
                "{} {} already gone",
                self.absent,
                plural(self.absent)
            ));
        }
        for c in &self.changed {
            out.push(format!("left alone, changed since: {c}"));
        }
        if out.is_empty() {
            out.push("nothing to remove".to_string());
        }
        out
    }
}

/// Deletes the record's entries that are still there as added; counts those
/// gone, and leaves alone (and reports) any entry someone changed since.
/// Running it again is harmless.
pub async fn revert(record: &NaclRevert, base: &AwsOptions) -> Result<NaclReverted, AwsError> {
    let mut clients = Clients::new(&record_options(record, base));
    let mut out = NaclReverted::default();
    let mut deletes: Vec<(Ec2, AclEntry)> = Vec::new();
    for (region, entries) in by_region(record) {
        let ec2 = clients.get(Some(&region)).await?;
        let vpc_ids: Vec<String> = entries
            .iter()
            .map(|e| e.vpc_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let now: BTreeMap<String, Vec<Existing>> = describe::acls(&ec2, &vpc_ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a.entries))
            .collect();
        let mut seen = BTreeSet::new();
        for e in entries {
            if !seen.insert((e.acl_id.clone(), e.egress, e.rule_number)) {
                continue;
            }
            let there = now.get(&e.acl_id).and_then(|entries| {
                entries
                    .iter()
                    .find(|x| x.rule_number == e.rule_number && x.egress == e.egress)
            });
            match there {
                None => out.absent += 1,
                Some(x) if e.is(x) => deletes.push((ec2.clone(), e)),
                Some(x) => out
                    .changed
                    .push(format!("{} is now {}", e.describe(), x.describe())),
            }
        }
    }
    let total = deletes.len();
    let results: Vec<(String, Result<bool, AwsError>)> = stream::iter(deletes)
        .map(|(ec2, e)| async move { (e.describe(), delete(&ec2, &e).await) })
        .buffer_unordered(PARALLEL_CALLS)
        .collect()
        .await;
    let mut failed_ids = Vec::new();
    let mut errors = Vec::new();
    for (what, r) in results {
        match r {
            Ok(true) => out.removed += 1,
            Ok(false) => out.absent += 1,
            Err(e) => {
                failed_ids.push(what);
                errors.push(e.to_string());
            }
        }
    }
    out.changed.sort();
    if failed_ids.is_empty() {
        return Ok(out);
    }
    failed_ids.sort();
    errors.sort();
    errors.dedup();
    Err(AwsError::Partial {
        operation: "DeleteNetworkAclEntry",
        noun: "ACL entries",
        total,
        failed: failed_ids.len(),
        failed_ids,
        errors,
    })
}

/// Ok(false): it went in the meantime.
async fn delete(ec2: &Ec2, e: &AclEntry) -> Result<bool, AwsError> {
    let r = ec2
        .sdk()
        .delete_network_acl_entry()
        .network_acl_id(&e.acl_id)
        .rule_number(e.rule_number)
        .egress(e.egress)
        .send()
        .await;
    match r.map_err(|err| AwsError::api("DeleteNetworkAclEntry", err)) {
        Ok(_) => Ok(true),
        Err(err)
            if matches!(
                err.code(),
                Some("InvalidNetworkAclEntry.NotFound" | "InvalidNetworkAclID.NotFound")
            ) =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_each_outcome() {
        let r = NaclReverted {
            removed: 4,
            absent: 1,
            changed: vec![
                "acl-1 (vpc-1, us-east-1) ingress #1 deny 10.2.0.0/16 is now allow 10.2.0.0/16"
                    .into(),
            ],
        };
        assert_eq!(
            r.summary(),
            [
                "4 DENY entries removed from the network ACLs",
                "1 entry already gone",
                "left alone, changed since: acl-1 (vpc-1, us-east-1) ingress #1 deny 10.2.0.0/16 is now allow 10.2.0.0/16",
            ]
        );
        assert_eq!(NaclReverted::default().summary(), ["nothing to remove"]);
    }
}
