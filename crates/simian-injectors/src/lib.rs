//! Fault injectors. Each fault is planned (targets resolved, nothing
//! changed), prepared (its revert record computed, for the journal to hold
//! before anything changes) and applied. Reverting needs only the record, so
//! it can run in another process (`simian recover`), and is idempotent.
#![forbid(unsafe_code)]

mod aws;
mod error;
mod latency;
pub mod netfilter;
mod process;
mod procfs;
mod sever;
pub mod shift;
mod split;

use async_trait::async_trait;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use simian_experiment::Inject;
use simian_lab::LabState;

pub use error::FaultError;
pub use latency::LatencyRevert;
pub use netfilter::NetfilterRevert;
pub use process::{ProcessRevert, Restart, RevertTarget};
pub use sever::SeverRevert;

/// What a fault will do, resolved before anything is injected (the dry run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// `process`, ...
    pub backend: String,
    /// What it does to each target, e.g. `SIGKILL`.
    pub action: String,
    /// The targets it will hit, human-readable.
    pub targets: Vec<String>,
    /// How many targets were eligible (the blast radius denominator); 0 when the backend
    /// has no finite set to count against (a network path), so only a count can bound it.
    pub eligible: usize,
    /// What the eligible targets are, e.g. `lab instances`; guards sum per universe.
    pub universe: String,
    /// How the fault is undone.
    pub revert: String,
    /// True when nothing can undo it.
    pub irreversible: bool,
    /// The second line behind the guardian: the backend undoes the fault by itself this
    /// long after the runner last renewed it. None when the backend cannot expire it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<simian_core::Dur>,
}

impl Plan {
    /// "2 of 6 lab instances", or "2 network paths" when nothing is counted against.
    pub fn reach(&self) -> String {
        match self.eligible {
            0 => format!("{} {}", self.targets.len(), self.universe),
            n => format!("{} of {n} {}", self.targets.len(), self.universe),
        }
    }
}

/// Everything needed to undo one applied fault, serialised into the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RevertRecord {
    Process(ProcessRevert),
    Latency(LatencyRevert),
    Netfilter(NetfilterRevert),
    Sever(SeverRevert),
    Shift(shift::ShiftRevert),
    AwsEc2(simian_aws::ec2::Ec2Revert),
    AwsNacl(simian_aws::nacl::NaclRevert),
}

/// What a revert did, for reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reverted {
    pub actions: Vec<String>,
}

/// A runtime fault built from an `inject` step.
#[async_trait]
pub trait Fault: Send + Sync {
    fn plan(&self) -> &Plan;
    /// Resolves what exactly will change (current pids, ...) into a revert record; changes nothing.
    async fn prepare(&self) -> Result<RevertRecord, FaultError>;
    /// Applies the fault described by `record` (as returned by `prepare`).
    async fn apply(&self, record: &RevertRecord) -> Result<(), FaultError>;
    /// Renews the fault's lease (see [`Plan::lease`]); an error when the fault is no
    /// longer in place (the lease ran out, or something else undid it). A renewal never
    /// applies a fault again.
    async fn renew(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        Ok(())
    }
    /// A fault that can be applied by degrees (a traffic shift) gives its ramp.
    fn ramp(&self) -> Option<&dyn shift::Ramp> {
        None
    }
    /// A fault that delays traffic gives the distribution of the delays it adds (for the
    /// reports' histogram).
    fn delay(&self) -> Option<simian_delay::DelaySpec> {
        None
    }
}

/// What building a fault can use.
pub struct BuildCtx<'a> {
    pub lab: Option<&'a LabState>,
    /// The admin API of the proxies this run started itself (`proxies:`), if any.
    pub run_proxy_api: Option<&'a str>,
    /// Seeded, so target selection can be replayed with `--seed`.
    pub rng: &'a mut ChaCha8Rng,
    /// How long a fault outlives its last renewal, where the backend can expire it; None
    /// turns leases off.
    pub lease: Option<std::time::Duration>,
}

/// Builds the fault named `name` for an `inject` step, resolving its targets.
pub async fn build(
    name: &str,
    inject: &Inject,
    ctx: &mut BuildCtx<'_>,
) -> Result<Box<dyn Fault>, FaultError> {
    if let Some(p) = &inject.process {
        return Ok(Box::new(process::ProcessFault::build(p, ctx)?));
    }
    if let Some(l) = &inject.latency {
        return Ok(Box::new(
            latency::LatencyFault::build(name, l, ctx.run_proxy_api, ctx.lease).await?,
        ));
    }
    if let Some(s) = &inject.sever {
        return Ok(Box::new(
            sever::SeverFault::build(name, s, ctx.lease).await?,
        ));
    }
    if let Some(n) = &inject.netfilter {
        return Ok(Box::new(netfilter::NetfilterFault::build(
            name, n, ctx.lease,
        )?));
    }
    if let Some(a) = &inject.aws_ec2 {
        return Ok(Box::new(aws::ec2::AwsEc2Fault::build(a, ctx).await?));
    }
    if let Some(n) = &inject.aws_nacl {
        return Ok(Box::new(aws::nacl::AwsNaclFault::build(n).await?));
    }
    if let Some(s) = &inject.shift {
        return Ok(Box::new(shift::build(name, s, ctx.lab).await?));
    }
    if let Some(s) = &inject.split {
        return split::build(name, s, ctx.lab, ctx.lease).await;
    }
    Err(FaultError::Config(
        "the inject step names no backend".into(),
    ))
}

/// The lease a fault on the proxies behind `client` gets: `want`, when the server can
/// expire toxics and disables by itself (`simian proxy`; Toxiproxy cannot).
async fn proxy_lease(
    client: &simian_toxiproxy::Client,
    want: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    let want = want?;
    let features = client.features().await.unwrap_or_default();
    features.iter().any(|f| f == "ttl").then_some(want)
}

/// Renews a leased toxic; gone means the fault is no longer in place.
async fn renew_toxic(
    client: &simian_toxiproxy::Client,
    proxy: &str,
    toxic: &str,
    ttl: std::time::Duration,
) -> Result<(), FaultError> {
    client
        .renew_toxic(proxy, toxic, ttl)
        .await
        .map_err(|e| match e.status() {
            Some(404) => FaultError::Action(format!(
                "toxic `{toxic}` is no longer on proxy `{proxy}` (its lease ran out, or someone removed it)"
            )),
            _ => FaultError::Action(format!("renew toxic `{toxic}` on `{proxy}`: {e}")),
        })
}

/// Undoes a recorded fault. Safe to call again on an already reverted one.
pub async fn revert(record: &RevertRecord) -> Result<Reverted, FaultError> {
    match record {
        RevertRecord::Process(p) => process::revert(p).await,
        RevertRecord::Latency(l) => latency::revert(l).await,
        RevertRecord::Netfilter(n) => netfilter::revert(n).await,
        RevertRecord::Sever(s) => sever::revert(s).await,
        RevertRecord::Shift(s) => shift::revert(s).await,
        RevertRecord::AwsEc2(a) => aws::ec2::revert(a).await,
        RevertRecord::AwsNacl(n) => aws::nacl::revert(n).await,
    }
}
