//! The `shift` injector: moves a share of one region's traffic to another through a
//! traffic shifter (the lab's global router, HAProxy weights, a webhook, Route53
//! weighted records). `evacuate` steps ramp it through [`Ramp`]; an `inject: shift`
//! sets one share at once.
//!
//! Prepare reads the shifter's current state into the revert record, so the journal holds
//! the original weights before anything changes; revert puts exactly those back.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use simian_experiment::{ShiftFault as Config, Shifter};
use simian_lab::LabState;

use crate::{Fault, FaultError, Plan, RevertRecord, Reverted};

mod haproxy;
mod http;
mod route53;

/// Sets the share of `from`'s traffic moved to `to`, any number of times.
#[async_trait]
pub trait Ramp: Send + Sync {
    /// `share` in 0..=1.
    async fn shift(&self, share: f64) -> Result<(), FaultError>;
}

/// The journal's record: how to put the original state back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum ShiftRevert {
    Haproxy(haproxy::Original),
    Http(http::Original),
    Route53(simian_aws::route53::WeightsRevert),
}

/// A shift through one shifter.
pub struct ShiftFault {
    plan: Plan,
    share: f64,
    shifter: Box<dyn Backend>,
}

/// What each shifter does; `ShiftFault` wraps it into a [`Fault`] and a [`Ramp`].
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Reads the current state: what revert puts back.
    async fn save(&self) -> Result<ShiftRevert, FaultError>;
    /// Moves `share` (0..=1) of `from`'s traffic.
    async fn set(&self, share: f64) -> Result<(), FaultError>;
}

pub async fn build(
    name: &str,
    cfg: &Config,
    lab: Option<&LabState>,
) -> Result<ShiftFault, FaultError> {
    let share = cfg.percent.map_or(1.0, |p| p.fraction());
    let (shifter, targets, universe, eligible): (Box<dyn Backend>, Vec<String>, String, usize) =
        match &cfg.via {
            Shifter::Haproxy(h) => {
                let s = haproxy::Haproxy::build(name, cfg, h).await?;
                let (t, u, e) = s.describe();
                (Box::new(s), t, u, e)
            }
            Shifter::Http(h) => {
                let s = http::Http::build(name, cfg, h)?;
                let (t, u, e) = s.describe();
                (Box::new(s), t, u, e)
            }
            Shifter::Route53(r) => {
                let s = route53::Route53Weights::build(cfg, r).await?;
                let (t, u, e) = s.describe(share);
                (Box::new(s), t, u, e)
            }
            Shifter::Lab(_) => {
                let s = http::Http::lab(name, cfg, lab)?;
                let (t, u, e) = s.describe();
                (Box::new(s), t, u, e)
            }
        };
    let plan = Plan {
        backend: "shift".into(),
        action: format!(
            "move {:.0}% of {}'s traffic to {}",
            share * 100.0,
            cfg.from,
            cfg.to
        ),
        eligible,
        targets,
        universe,
        revert: "restore the original traffic split".into(),
        irreversible: false,
        lease: None,
    };
    Ok(ShiftFault {
        plan,
        share,
        shifter,
    })
}

#[async_trait]
impl Fault for ShiftFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(RevertRecord::Shift(self.shifter.save().await?))
    }

    async fn apply(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        self.shifter.set(self.share).await
    }

    fn ramp(&self) -> Option<&dyn Ramp> {
        Some(self)
    }
}

#[async_trait]
impl Ramp for ShiftFault {
    async fn shift(&self, share: f64) -> Result<(), FaultError> {
        self.shifter.set(share).await
    }
}

pub async fn revert(r: &ShiftRevert) -> Result<Reverted, FaultError> {
    match r {
        ShiftRevert::Haproxy(o) => haproxy::restore(o).await,
        ShiftRevert::Http(o) => http::restore(o).await,
        ShiftRevert::Route53(o) => route53::restore(o).await,
    }
}

/// `s` cut to `max` characters, with `…` when cut: for answers quoted in errors.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
