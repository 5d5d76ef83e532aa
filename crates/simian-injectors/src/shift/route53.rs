//! Route53: weighted record sets of one name, one per region (its `SetIdentifier`).
//! A shift moves `share` of `from`'s weight to `to` in one atomic change batch and waits
//! for it to be in sync; revert puts the original weights back, touching nothing else
//! of the record sets (values, TTL, health checks as they are then).

use std::sync::Mutex;

use simian_aws::route53::{self, Route53, WeightedTarget, WeightsRevert};
use simian_aws::AwsOptions;
use simian_experiment::{Route53Shifter, ShiftFault as Config};

use super::{Backend, ShiftRevert};
use crate::aws::on_task;
use crate::{FaultError, Reverted};

pub(crate) struct Route53Weights {
    r53: Route53,
    /// The weights when built (for the plan, and if `set` comes before `save`).
    read: WeightsRevert,
    /// What `save` read: every step moves weight from these.
    saved: Mutex<Option<WeightsRevert>>,
}

impl Route53Weights {
    /// Finds the zone and both record sets, and reads their weights.
    pub(crate) async fn build(cfg: &Config, r: &Route53Shifter) -> Result<Self, FaultError> {
        let set_id = |region: &str| {
            r.set_identifiers
                .get(region)
                .cloned()
                .unwrap_or_else(|| region.to_string())
        };
        let target = WeightedTarget {
            zone: r.zone.clone(),
            name: r.record.clone(),
            record_type: r.record_type.clone(),
            from: set_id(&cfg.from),
            to: set_id(&cfg.to),
        };
        let opts = AwsOptions {
            endpoint_url: r.endpoint_url.clone(),
            ..AwsOptions::default()
        };
        let (r53, read) = on_task("reading the Route53 records", async move {
            let r53 = Route53::connect(&opts).await?;
            let read = route53::read(&r53, &target).await?;
            Ok((r53, read))
        })
        .await
        .map_err(|e| FaultError::Targets {
            message: format!("cannot use the weighted records of {}: {e}", r.record),
            hint: Some(
                "check `zone`, `record` and `set_identifiers`, credentials, and AWS_ENDPOINT_URL if you use one"
                    .into(),
            ),
        })?;
        Ok(Route53Weights {
            r53,
            read,
            saved: Mutex::new(None),
        })
    }

    /// (targets, universe, eligible) for the plan, with the weights at `share`; a
    /// traffic split has nothing to count against (the action says what share it moves).
    pub(crate) fn describe(&self, share: f64) -> (Vec<String>, String, usize) {
        let o = &self.read;
        let (from, to) = route53::weights_at(o, share);
        let targets = vec![
            format!(
                "{} {} `{}` weight {} → {from}",
                o.name, o.record_type, o.from.set_identifier, o.from.weight
            ),
            format!(
                "{} {} `{}` weight {} → {to}",
                o.name, o.record_type, o.to.set_identifier, o.to.weight
            ),
        ];
        (
            targets,
            format!("weighted record sets of {} in {}", o.name, o.zone_id),
            0,
        )
    }
}

#[async_trait::async_trait]
impl Backend for Route53Weights {
    async fn save(&self) -> Result<ShiftRevert, FaultError> {
        let (r53, o) = (self.r53.clone(), self.read.clone());
        let target = WeightedTarget {
            zone: o.zone_id.clone(),
            name: o.name.clone(),
            record_type: Some(o.record_type.clone()),
            from: o.from.set_identifier.clone(),
            to: o.to.set_identifier.clone(),
        };
        let now = on_task("reading the Route53 weights", async move {
            route53::read(&r53, &target).await
        })
        .await?;
        *self.saved.lock().expect("weights lock") = Some(now.clone());
        Ok(ShiftRevert::Route53(now))
    }

    async fn set(&self, share: f64) -> Result<(), FaultError> {
        let original = self
            .saved
            .lock()
            .expect("weights lock")
            .clone()
            .unwrap_or_else(|| self.read.clone());
        let r53 = self.r53.clone();
        on_task("setting the Route53 weights", async move {
            route53::set_share(&r53, &original, share).await
        })
        .await
        .map(|_| ())
    }
}

/// Puts the recorded weights back; repeating it changes nothing.
pub async fn restore(o: &WeightsRevert) -> Result<Reverted, FaultError> {
    let o = o.clone();
    let actions = on_task("restoring the Route53 weights", async move {
        let r53 = Route53::connect(&AwsOptions {
            endpoint_url: o.endpoint_url.clone(),
            ..AwsOptions::default()
        })
        .await?;
        route53::restore(&r53, &o).await
    })
    .await?;
    Ok(Reverted { actions })
}
