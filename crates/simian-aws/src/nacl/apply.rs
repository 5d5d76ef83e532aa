//! The record of a cut (every entry it adds) and applying it.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::RuleAction;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::ec2::{Ec2, PARALLEL_CALLS};
use crate::nacl::cidr::Cidr;
use crate::nacl::describe::{self, Clients};
use crate::nacl::plan::direction_name;
use crate::nacl::NaclPlan;
use crate::{AwsError, AwsOptions};

/// One DENY entry (all protocols) a cut adds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub region: String,
    pub vpc_id: String,
    pub acl_id: String,
    pub rule_number: i32,
    /// False: ingress.
    pub egress: bool,
    /// The IPv4 or IPv6 block denied, canonical.
    pub cidr: String,
}

impl AclEntry {
    /// `acl-1 (vpc-1, us-east-1) ingress #1 deny 10.2.0.0/16`
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {}) {} #{} deny {}",
            self.acl_id,
            self.vpc_id,
            self.region,
            direction_name(self.egress),
            self.rule_number,
            self.cidr
        )
    }

    /// True when `e` is this entry: same number and direction, DENY, all
    /// protocols, same block.
    pub(crate) fn is(&self, e: &describe::Existing) -> bool {
        e.rule_number == self.rule_number
            && e.egress == self.egress
            && !e.allow
            && e.protocol == "-1"
            && e.cidr.is_some()
            && e.cidr == Cidr::parse(&self.cidr).ok()
    }
}

/// Everything needed to undo a cut, serialised into the journal before any
/// entry is added: the entries themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaclRevert {
    /// The endpoint override the cut went to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    pub entries: Vec<AclEntry>,
}

/// The record for applying `plan`, with the endpoint its clients resolved
/// (else `base`'s).
pub fn record(plan: &NaclPlan, base: &AwsOptions) -> NaclRevert {
    NaclRevert {
        endpoint_url: plan
            .endpoint_url
            .clone()
            .or_else(|| base.endpoint_url.clone()),
        entries: plan.entries.clone(),
    }
}

/// The options reaching the record's endpoint (as [`Ec2::for_record`] does).
pub(crate) fn record_options(record: &NaclRevert, base: &AwsOptions) -> AwsOptions {
    AwsOptions {
        endpoint_url: record.endpoint_url.clone(),
        ..base.clone()
    }
}

/// Adds the record's entries, [`PARALLEL_CALLS`] at a time. Write the record
/// first. Every entry is tried; if some fail the error lists them (revert
/// from the record, which skips what is not there).
pub async fn apply(record: &NaclRevert, base: &AwsOptions) -> Result<(), AwsError> {
    let mut clients = Clients::new(&record_options(record, base));
    let mut calls = Vec::new();
    for e in &record.entries {
        calls.push((clients.get(Some(&e.region)).await?, e.clone()));
    }
    let failures: Vec<(String, AwsError)> = stream::iter(calls)
        .map(|(ec2, e)| async move { create(&ec2, &e).await.err().map(|err| (e.describe(), err)) })
        .buffer_unordered(PARALLEL_CALLS)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    if failures.is_empty() {
        return Ok(());
    }
    let mut failed_ids: Vec<String> = failures.iter().map(|(d, _)| d.clone()).collect();
    failed_ids.sort();
    let mut errors: Vec<String> = failures.iter().map(|(_, e)| e.to_string()).collect();
    errors.sort();
    errors.dedup();
    Err(AwsError::Partial {
        operation: "CreateNetworkAclEntry",
        noun: "ACL entries",
        total: record.entries.len(),
        failed: failures.len(),
        failed_ids,
        errors,
    })
}

async fn create(ec2: &Ec2, e: &AclEntry) -> Result<(), AwsError> {
    let req = ec2
        .sdk()
        .create_network_acl_entry()
        .network_acl_id(&e.acl_id)
        .rule_number(e.rule_number)
        .egress(e.egress)
        .protocol("-1")
        .rule_action(RuleAction::Deny);
    let req = if e.cidr.contains(':') {
        req.ipv6_cidr_block(&e.cidr)
    } else {
        req.cidr_block(&e.cidr)
    };
    let err = match req.send().await {
        Ok(_) => return Ok(()),
        Err(err) => AwsError::api("CreateNetworkAclEntry", err),
    };
    // A retried call whose first attempt went through finds its own entry.
    if err.code() == Some("NetworkAclEntryAlreadyExists") {
        let acls = describe::acls(ec2, std::slice::from_ref(&e.vpc_id)).await?;
        let ours = acls
            .iter()
            .filter(|a| a.id == e.acl_id)
            .flat_map(|a| &a.entries)
            .any(|x| e.is(x));
        if ours {
            return Ok(());
        }
    }
    Err(err)
}

/// The record's entries grouped by region.
pub(crate) fn by_region(record: &NaclRevert) -> BTreeMap<String, Vec<AclEntry>> {
    let mut out: BTreeMap<String, Vec<AclEntry>> = BTreeMap::new();
    for e in &record.entries {
        out.entry(e.region.clone()).or_default().push(e.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i32, egress: bool) -> AclEntry {
        AclEntry {
            region: "us-east-1".into(),
            vpc_id: "vpc-1".into(),
            acl_id: "acl-1".into(),
            rule_number: n,
            egress,
            cidr: "10.2.0.0/16".into(),
        }
    }

    #[test]
    fn describe_names_the_acl_vpc_region_direction_and_rule() {
        assert_eq!(
            entry(1, false).describe(),
            "acl-1 (vpc-1, us-east-1) ingress #1 deny 10.2.0.0/16"
        );
        assert_eq!(
            entry(2, true).describe(),
            "acl-1 (vpc-1, us-east-1) egress #2 deny 10.2.0.0/16"
        );
    }

    #[test]
    fn the_journal_form_is_stable_and_strict() {
        let r = NaclRevert {
            endpoint_url: None,
            entries: vec![entry(1, false)],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"entries":[{"region":"us-east-1","vpc_id":"vpc-1","acl_id":"acl-1","rule_number":1,"egress":false,"cidr":"10.2.0.0/16"}]}"#
        );
        assert_eq!(serde_json::from_str::<NaclRevert>(&json).unwrap(), r);
        let typo = json.replace("\"entries\"", "\"entry\"");
        assert!(serde_json::from_str::<NaclRevert>(&typo).is_err());
    }

    #[test]
    fn only_the_exact_deny_is_ours() {
        let e = entry(1, false);
        let mut x = describe::Existing {
            rule_number: 1,
            egress: false,
            allow: false,
            protocol: "-1".into(),
            cidr: Cidr::parse("10.2.0.0/16").ok(),
        };
        assert!(e.is(&x));
        x.protocol = "6".into();
        assert!(!e.is(&x), "a deny of TCP only is someone else's");
        x.protocol = "-1".into();
        x.allow = true;
        assert!(!e.is(&x));
        x.allow = false;
        x.cidr = Cidr::parse("10.3.0.0/16").ok();
        assert!(!e.is(&x));
        x.cidr = Cidr::parse("10.2.0.0/16").ok();
        x.egress = true;
        assert!(!e.is(&x));
    }
}
