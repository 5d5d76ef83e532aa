//! Undoing a zone kill from its record alone: start what was stopped.
//! Idempotent, and safe to run in another process after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::ec2::action::{changes, in_batches, PARALLEL_CALLS};
use crate::ec2::{Action, Ec2};
use crate::AwsError;

/// Values per DescribeInstances filter: EC2 refuses more than 200
/// (`FilterLimitExceeded`: "The maximum number of filter values specified on
/// a single call is 200").
const FILTER_VALUES: usize = 200;

/// Everything needed to undo one EC2 zone kill, serialised into the journal
/// before anything is stopped. Reverting needs nothing else (credentials come
/// from the standard chain of the process that reverts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Revert {
    pub region: String,
    /// The endpoint override the fault went to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    pub action: Action,
    pub instance_ids: Vec<String>,
    /// True when nothing can undo the action (terminate); for whoever reads
    /// the journal. [`revert`] goes by `action`.
    pub irreversible: bool,
}

impl Ec2Revert {
    /// The record for applying `action` to `instance_ids` with `ec2`.
    pub fn new(ec2: &Ec2, action: Action, instance_ids: Vec<String>) -> Self {
        Ec2Revert {
            region: ec2.region().to_string(),
            endpoint_url: ec2.endpoint_url().map(str::to_string),
            action,
            instance_ids,
            irreversible: !action.is_reversible(),
        }
    }
}

/// How long a revert waits for instances still `stopping` (they can only be
/// started once `stopped`; EC2 takes up to a few minutes).
#[derive(Debug, Clone)]
pub struct RevertOptions {
    pub stopping_timeout: Duration,
    pub poll_every: Duration,
}

impl Default for RevertOptions {
    fn default() -> Self {
        RevertOptions {
            stopping_timeout: Duration::from_secs(600),
            poll_every: Duration::from_secs(5),
        }
    }
}

/// What a revert did, id by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reverted {
    /// StartInstances was called for these.
    pub started: Vec<String>,
    /// Running or pending already: nothing to do.
    pub already_running: Vec<String>,
    /// EC2 does not know them any more.
    pub missing: Vec<String>,
    /// Terminated or shutting down since: they cannot be started.
    pub terminated: Vec<String>,
    /// The record's action cannot be undone; nothing was called.
    pub irreversible: bool,
}

impl Reverted {
    /// One line per kind of outcome, for reports.
    pub fn summary(&self) -> Vec<String> {
        if self.irreversible {
            return vec!["nothing to undo: terminated instances cannot be restored".to_string()];
        }
        let mut out = Vec::new();
        let mut line = |ids: &[String], what: &str| {
            if !ids.is_empty() {
                let noun = if ids.len() == 1 {
                    "instance"
                } else {
                    "instances"
                };
                out.push(format!("{} {noun} {what}", ids.len()));
            }
        };
        line(&self.started, "started");
        line(&self.already_running, "already running");
        line(&self.missing, "gone (unknown to EC2)");
        line(&self.terminated, "terminated since, not restartable");
        out
    }
}

/// [`revert_with`] with the default wait for stopping instances.
pub async fn revert(ec2: &Ec2, record: &Ec2Revert) -> Result<Reverted, AwsError> {
    revert_with(ec2, record, &RevertOptions::default()).await
}

/// Starts the record's instances that are stopped (waiting, bounded, for
/// those still stopping); reports those already running, gone or
/// terminated. Running it again is harmless.
pub async fn revert_with(
    ec2: &Ec2,
    record: &Ec2Revert,
    opts: &RevertOptions,
) -> Result<Reverted, AwsError> {
    if record.region != ec2.region() {
        return Err(AwsError::RegionMismatch {
            record: record.region.clone(),
            client: ec2.region().to_string(),
        });
    }
    if !record.action.is_reversible() {
        return Ok(Reverted {
            irreversible: true,
            ..Reverted::default()
        });
    }
    let ids: Vec<String> = record
        .instance_ids
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = Reverted::default();
    let mut to_start = Vec::new();
    // Instances still stopping are looked at again, a bounded number of times.
    let mut polls_left = opts
        .stopping_timeout
        .as_millis()
        .div_ceil(opts.poll_every.as_millis().max(1));
    let mut stopping = ids;
    loop {
        let now = current_states(ec2, &stopping).await?;
        for id in std::mem::take(&mut stopping) {
            match now.get(&id).map(String::as_str) {
                None => out.missing.push(id),
                Some("stopped") => to_start.push(id),
                Some("stopping") => stopping.push(id),
                Some("running" | "pending") => out.already_running.push(id),
                Some(_) => out.terminated.push(id),
            }
        }
        // Start what is ready now, rather than after the wait for the rest.
        if !to_start.is_empty() {
            to_start.sort();
            in_batches("StartInstances", &to_start, |chunk| start(ec2, chunk)).await?;
            out.started.append(&mut to_start);
        }
        if stopping.is_empty() || polls_left == 0 {
            break;
        }
        polls_left -= 1;
        tokio::time::sleep(opts.poll_every).await;
    }
    if !stopping.is_empty() {
        return Err(AwsError::StillStopping {
            ids: stopping,
            waited_secs: opts.stopping_timeout.as_secs(),
        });
    }
    for v in [
        &mut out.started,
        &mut out.already_running,
        &mut out.missing,
        &mut out.terminated,
    ] {
        v.sort();
    }
    Ok(out)
}

async fn start(ec2: &Ec2, ids: Vec<String>) -> Result<Vec<crate::ec2::StateChange>, AwsError> {
    let out = ec2
        .sdk()
        .start_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .map_err(|e| AwsError::api("StartInstances", e))?;
    Ok(changes(out.starting_instances()))
}

/// The current state of each of `ids` that EC2 still knows. Filters by
/// `instance-id` rather than passing `InstanceIds`, which fails the whole
/// call on one unknown id.
async fn current_states(ec2: &Ec2, ids: &[String]) -> Result<BTreeMap<String, String>, AwsError> {
    // Owned chunks, so the future is `Send` for every lifetime (see `in_batches`).
    let chunks: Vec<Vec<String>> = ids.chunks(FILTER_VALUES).map(<[String]>::to_vec).collect();
    let pages: Vec<Result<Vec<(String, String)>, AwsError>> = stream::iter(chunks)
        .map(|chunk| describe_states(ec2, chunk))
        .buffer_unordered(PARALLEL_CALLS)
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for page in pages {
        out.extend(page?);
    }
    Ok(out)
}

async fn describe_states(ec2: &Ec2, ids: Vec<String>) -> Result<Vec<(String, String)>, AwsError> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("instance-id")
        .set_values(Some(ids))
        .build();
    let mut pages = ec2
        .sdk()
        .describe_instances()
        .filters(filter)
        .into_paginator()
        .page_size(1000)
        .items()
        .send();
    let mut out = Vec::new();
    while let Some(r) = pages.next().await {
        let r = r.map_err(|e| AwsError::api("DescribeInstances", e))?;
        for i in r.instances() {
            if let (Some(id), Some(state)) = (i.instance_id(), i.state().and_then(|s| s.name())) {
                out.push((id.to_string(), state.as_str().to_string()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Ec2Revert {
        Ec2Revert {
            region: "us-east-1".into(),
            endpoint_url: None,
            action: Action::Stop,
            instance_ids: vec!["i-1".into(), "i-2".into()],
            irreversible: false,
        }
    }

    #[test]
    fn the_journal_form_is_stable() {
        let json = serde_json::to_string(&record()).unwrap();
        assert_eq!(
            json,
            r#"{"region":"us-east-1","action":"stop","instance_ids":["i-1","i-2"],"irreversible":false}"#
        );
    }

    #[test]
    fn it_round_trips_inside_an_internally_tagged_journal_enum() {
        // The engine's revert record is `#[serde(tag = "kind")]`: the tag must
        // not trip `deny_unknown_fields`.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        enum Journal {
            AwsEc2(Ec2Revert),
        }
        let r = Journal::AwsEc2(Ec2Revert {
            endpoint_url: Some("http://127.0.0.1:5000".into()),
            ..record()
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.starts_with(r#"{"kind":"aws-ec2","#), "{line}");
        assert_eq!(serde_json::from_str::<Journal>(&line).unwrap(), r);
        let typo = line.replace("instance_ids", "instances");
        assert!(serde_json::from_str::<Journal>(&typo).is_err());
    }

    #[test]
    fn summary_names_each_outcome() {
        let r = Reverted {
            started: vec!["i-1".into(), "i-2".into()],
            missing: vec!["i-3".into()],
            ..Reverted::default()
        };
        assert_eq!(
            r.summary(),
            ["2 instances started", "1 instance gone (unknown to EC2)"]
        );
    }
}
