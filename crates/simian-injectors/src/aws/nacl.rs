//! `aws_nacl`: split-brain on AWS. Each side's network ACLs get DENY entries for the
//! other side's CIDRs; the journal's record lists every entry, so revert (here or in
//! `simian recover`) deletes exactly those.

use async_trait::async_trait;
use simian_aws::nacl::{self, NaclRevert, Side};
use simian_aws::AwsOptions;
use simian_experiment::{AwsNaclFault as Config, Direction};

use super::on_task;
use crate::{Fault, FaultError, Plan, RevertRecord, Reverted};

pub struct AwsNaclFault {
    plan: Plan,
    record: NaclRevert,
    base: AwsOptions,
}

impl AwsNaclFault {
    pub async fn build(cfg: &Config) -> Result<Self, FaultError> {
        let base = AwsOptions {
            endpoint_url: cfg.endpoint_url.clone(),
            ..AwsOptions::default()
        };
        let [a, b] = cfg.sides.as_slice() else {
            return Err(FaultError::Config("a cut has two sides".into()));
        };
        let side = |s: &simian_experiment::NaclSide| Side {
            region: s.region.clone(),
            vpc_ids: s.vpcs.clone(),
            vpc_tags: s.tags.clone(),
            cidrs: s.cidrs.clone(),
        };
        let sides = [side(a), side(b)];
        let direction = match cfg.direction {
            Direction::Both => nacl::Direction::Both,
            Direction::Ingress => nacl::Direction::Ingress,
            Direction::Egress => nacl::Direction::Egress,
        };
        let (planned, record) = {
            let base = base.clone();
            on_task("listing the network ACLs", async move {
                let planned = nacl::plan(&sides, direction, &base).await?;
                let record = nacl::record(&planned, &base);
                Ok((planned, record))
            })
            .await
            .map_err(|e| FaultError::Targets {
                message: format!("cannot plan the network ACL cut: {e}"),
                hint: Some(
                    "check the sides' regions and VPCs, AWS_REGION, credentials, and AWS_ENDPOINT_URL if you use one"
                        .into(),
                ),
            })?
        };
        let vpcs: Vec<String> = planned
            .vpcs
            .iter()
            .map(|v| format!("{} ({})", v.id, v.region))
            .collect();
        // Each VPC cut is a target (every subnet of it loses the other side), listed with
        // the entries its ACLs get.
        let targets: Vec<String> = planned
            .vpcs
            .iter()
            .map(|v| {
                let entries: Vec<String> = record
                    .entries
                    .iter()
                    .filter(|e| e.vpc_id == v.id)
                    .map(|e| e.describe())
                    .collect();
                format!("{} ({}): {}", v.id, v.region, entries.join("; "))
            })
            .collect();
        let mut regions: Vec<&str> = planned.vpcs.iter().map(|v| v.region.as_str()).collect();
        regions.sort();
        regions.dedup();
        let plan = Plan {
            backend: "aws_nacl".into(),
            action: format!(
                "add {} DENY entries to the network ACLs of {}",
                record.entries.len(),
                vpcs.join(", ")
            ),
            eligible: planned.vpcs_in_regions.max(targets.len()),
            targets,
            universe: format!("VPCs in {}", regions.join(", ")),
            revert: "delete exactly the entries added".into(),
            irreversible: false,
            lease: None,
        };
        Ok(AwsNaclFault { plan, record, base })
    }
}

#[async_trait]
impl Fault for AwsNaclFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(RevertRecord::AwsNacl(self.record.clone()))
    }

    async fn apply(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        let (record, base) = (self.record.clone(), self.base.clone());
        on_task("adding the ACL entries", async move {
            nacl::apply(&record, &base).await
        })
        .await
    }
}

pub async fn revert(r: &NaclRevert) -> Result<Reverted, FaultError> {
    let r = r.clone();
    let done = on_task("the ACL revert", async move {
        nacl::revert(&r, &AwsOptions::default()).await
    })
    .await?;
    Ok(Reverted {
        actions: done.summary(),
    })
}
