//! Applying a zone kill: StopInstances or TerminateInstances over the target
//! ids, in batches, a few batches at a time.

use std::future::Future;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::ec2::Ec2;
use crate::AwsError;

/// Ids per StopInstances / StartInstances / TerminateInstances call. EC2
/// documents "Constraints: Up to 1000 instance IDs. We recommend breaking up
/// this request into smaller batches." on TerminateInstances' `InstanceIds`
/// (EC2 API reference, TerminateInstances); StopInstances and StartInstances
/// state no figure, so they get the same bound.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// Batches in flight at once: enough to stop a large zone quickly, few
/// enough not to trip EC2's request-rate throttling (the SDK retries
/// throttled calls, see [`crate::DEFAULT_MAX_ATTEMPTS`]).
pub const PARALLEL_CALLS: usize = 4;

/// What a zone kill does to each target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// StopInstances; reverted with StartInstances.
    Stop,
    /// TerminateInstances: irreversible (the instances and their instance
    /// store are gone; an Auto Scaling group may replace them).
    Terminate,
}

impl Action {
    pub fn is_reversible(self) -> bool {
        matches!(self, Action::Stop)
    }

    /// The EC2 operation that applies it.
    pub fn operation(self) -> &'static str {
        match self {
            Action::Stop => "StopInstances",
            Action::Terminate => "TerminateInstances",
        }
    }

    /// How a plan describes its revert.
    pub fn revert_text(self) -> &'static str {
        match self {
            Action::Stop => "StartInstances",
            Action::Terminate => "none: terminating is irreversible",
        }
    }
}

/// One instance's state change, as EC2 reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub id: String,
    pub previous: Option<String>,
    pub current: Option<String>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub action: Action,
    pub changed: Vec<StateChange>,
    /// API calls made (one per batch).
    pub batches: usize,
}

/// Stops or terminates `ids`, [`MAX_IDS_PER_CALL`] per call, [`PARALLEL_CALLS`]
/// calls at a time. Write the revert record before calling this. If some
/// batches fail, the others still run and the error lists the ids that failed.
pub async fn apply(ec2: &Ec2, action: Action, ids: &[String]) -> Result<Applied, AwsError> {
    let changed = match action {
        Action::Stop => in_batches(action.operation(), ids, |chunk| stop(ec2, chunk)).await?,
        Action::Terminate => {
            in_batches(action.operation(), ids, |chunk| terminate(ec2, chunk)).await?
        }
    };
    Ok(Applied {
        action,
        changed,
        batches: ids.len().div_ceil(MAX_IDS_PER_CALL),
    })
}

/// Asks EC2 whether this caller may apply `action` to `ids` (a `DryRun`
/// call on the first batch; nothing changes). For `simian plan`.
pub async fn preflight(ec2: &Ec2, action: Action, ids: &[String]) -> Result<(), AwsError> {
    let Some(chunk) = ids.chunks(MAX_IDS_PER_CALL).next() else {
        return Ok(());
    };
    let ids = Some(chunk.to_vec());
    let err = match action {
        Action::Stop => {
            let r = ec2
                .sdk()
                .stop_instances()
                .set_instance_ids(ids)
                .dry_run(true);
            r.send()
                .await
                .err()
                .map(|e| AwsError::api("StopInstances", e))
        }
        Action::Terminate => {
            let r = ec2
                .sdk()
                .terminate_instances()
                .set_instance_ids(ids)
                .dry_run(true);
            r.send()
                .await
                .err()
                .map(|e| AwsError::api("TerminateInstances", e))
        }
    };
    match err {
        // EC2's answer to a dry run that would have succeeded.
        Some(e) if e.code() == Some("DryRunOperation") => Ok(()),
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn stop(ec2: &Ec2, ids: Vec<String>) -> Result<Vec<StateChange>, AwsError> {
    let out = ec2
        .sdk()
        .stop_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .map_err(|e| AwsError::api("StopInstances", e))?;
    Ok(changes(out.stopping_instances()))
}

async fn terminate(ec2: &Ec2, ids: Vec<String>) -> Result<Vec<StateChange>, AwsError> {
    let out = ec2
        .sdk()
        .terminate_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .map_err(|e| AwsError::api("TerminateInstances", e))?;
    Ok(changes(out.terminating_instances()))
}

pub(crate) fn changes(list: &[aws_sdk_ec2::types::InstanceStateChange]) -> Vec<StateChange> {
    let name = |s: Option<&aws_sdk_ec2::types::InstanceState>| {
        s.and_then(|s| s.name()).map(|n| n.as_str().to_string())
    };
    list.iter()
        .filter_map(|c| {
            Some(StateChange {
                id: c.instance_id()?.to_string(),
                previous: name(c.previous_state()),
                current: name(c.current_state()),
            })
        })
        .collect()
}

/// Runs `call` over `ids` in batches of [`MAX_IDS_PER_CALL`], at most
/// [`PARALLEL_CALLS`] at once. Every batch runs even if one fails.
pub(crate) async fn in_batches<'a, F, Fut>(
    operation: &'static str,
    ids: &'a [String],
    call: F,
) -> Result<Vec<StateChange>, AwsError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<StateChange>, AwsError>> + 'a,
{
    // Owned chunks: a future borrowing `ids` per batch would not be `Send` for every
    // lifetime, which callers behind `async_trait` need.
    type Outcome = (Vec<String>, Result<Vec<StateChange>, AwsError>);
    let chunks: Vec<Vec<String>> = ids
        .chunks(MAX_IDS_PER_CALL)
        .map(<[String]>::to_vec)
        .collect();
    let results: Vec<Outcome> = stream::iter(chunks)
        .map(|chunk| {
            let fut = call(chunk.clone());
            async move { (chunk, fut.await) }
        })
        .buffer_unordered(PARALLEL_CALLS)
        .collect()
        .await;
    let batches = results.len();
    let mut changed = Vec::new();
    let mut failed_ids = Vec::new();
    let mut errors: Vec<AwsError> = Vec::new();
    for (chunk, r) in results {
        match r {
            Ok(c) => changed.extend(c),
            Err(e) => {
                failed_ids.extend(chunk);
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        changed.sort_by(|a, b| a.id.cmp(&b.id));
        return Ok(changed);
    }
    if batches == 1 {
        return Err(errors.remove(0));
    }
    failed_ids.sort();
    let mut messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    messages.sort();
    messages.dedup();
    Err(AwsError::Partial {
        operation,
        noun: "instances",
        total: ids.len(),
        failed: failed_ids.len(),
        failed_ids,
        errors: messages,
    })
}
