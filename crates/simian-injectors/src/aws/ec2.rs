//! `aws_ec2`: Chaos Gorilla on AWS. Stops (or terminates) the opted-in EC2 instances of a
//! zone through `simian-aws`; the journal's record lists the instance ids, region and
//! endpoint, so `simian recover` starts them again from the record alone.

use async_trait::async_trait;
use rand::RngExt;
use simian_aws::ec2::{self, Action, Ec2, Ec2Revert, Selection, Selector};
use simian_aws::AwsOptions;
use simian_core::Pick;
use simian_experiment::{AwsEc2Fault as Config, Ec2Action};

use super::on_task;
use crate::{BuildCtx, Fault, FaultError, Plan, RevertRecord, Reverted};

pub struct AwsEc2Fault {
    plan: Plan,
    ec2: Ec2,
    action: Action,
    targets: Vec<String>,
}

impl AwsEc2Fault {
    pub async fn build(cfg: &Config, ctx: &mut BuildCtx<'_>) -> Result<Self, FaultError> {
        let opts = AwsOptions {
            region: cfg.region.clone(),
            endpoint_url: cfg.endpoint_url.clone(),
            ..AwsOptions::default()
        };
        let ec2 = Ec2::connect(&opts).await.map_err(|e| FaultError::Targets {
            message: format!("cannot reach EC2: {e}"),
            hint: Some("check AWS_REGION, credentials, and AWS_ENDPOINT_URL if you use one".into()),
        })?;
        let mut selector = Selector {
            zone: cfg.zone.clone(),
            tags: cfg.tags.clone(),
            filters: cfg.filters.clone().into_iter().collect(),
            ..Selector::default()
        };
        if let Some(states) = &cfg.states {
            selector.states = states.clone();
        }
        if let Some((k, v)) = cfg.opt_in.as_deref().and_then(|t| t.split_once('=')) {
            selector.opt_in = (k.trim().to_string(), v.trim().to_string());
        }
        let selection = match cfg.pick {
            Pick::All => Selection::All,
            Pick::Count(n) => Selection::Count(n),
            Pick::Percent(p) => Selection::Percent(p.fraction() * 100.0),
        };
        let seed = ctx.rng.random::<u64>();
        let planned = ec2::plan(&ec2, &selector, selection, seed)
            .await
            .map_err(|e| FaultError::Targets {
                message: format!("cannot list the instances: {e}"),
                hint: None,
            })?;
        let action = match cfg.action {
            Ec2Action::Stop => Action::Stop,
            Ec2Action::Terminate => Action::Terminate,
        };
        let by_id = |id: &str| planned.eligible.iter().find(|i| i.id == id);
        let targets: Vec<String> = planned
            .targets
            .iter()
            .map(|id| match by_id(id) {
                Some(i) => format!(
                    "{id} ({}{})",
                    i.zone.as_deref().unwrap_or("?"),
                    i.name
                        .as_deref()
                        .map(|n| format!(", {n}"))
                        .unwrap_or_default()
                ),
                None => id.clone(),
            })
            .collect();
        let (k, v) = &selector.opt_in;
        let plan = Plan {
            backend: "aws_ec2".into(),
            action: format!("{} (EC2 {})", action.operation(), ec2.region()),
            targets,
            eligible: planned.fleet,
            universe: format!("opted-in ({k}={v}) EC2 instances in {}", ec2.region()),
            revert: action.revert_text().into(),
            irreversible: !action.is_reversible(),
            lease: None,
        };
        Ok(AwsEc2Fault {
            plan,
            ec2,
            action,
            targets: planned.targets,
        })
    }
}

#[async_trait]
impl Fault for AwsEc2Fault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(RevertRecord::AwsEc2(Ec2Revert::new(
            &self.ec2,
            self.action,
            self.targets.clone(),
        )))
    }

    async fn apply(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        let (ec2, action, ids) = (self.ec2.clone(), self.action, self.targets.clone());
        on_task("the EC2 call", async move {
            ec2::apply(&ec2, action, &ids).await
        })
        .await
        .map(|_| ())
    }
}

pub async fn revert(r: &Ec2Revert) -> Result<Reverted, FaultError> {
    let r = r.clone();
    let done = on_task("the EC2 revert", async move {
        let ec2 = Ec2::for_record(&r, AwsOptions::default()).await?;
        ec2::revert(&ec2, &r).await
    })
    .await?;
    Ok(Reverted {
        actions: done.summary(),
    })
}
