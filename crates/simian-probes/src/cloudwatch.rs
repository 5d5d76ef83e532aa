//! CloudWatch alarms at an interval, like AWS FIS stop conditions: `value` is how many
//! of the alarms are in ALARM. A read that fails (no such alarm, no credentials, no
//! answer within the timeout) is a failed observation with no value, so a stop condition
//! on `value` never fires on missing data; assert `success_ratio` too if that matters.

use std::sync::Arc;

use simian_aws::cloudwatch::{alarm_states, CloudWatch};
use simian_aws::AwsOptions;
use simian_core::Recorder;
use simian_experiment::CloudwatchProbe;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Checks a CloudWatch probe: every problem, as messages.
pub fn check(c: &CloudwatchProbe) -> Vec<String> {
    let mut out = Vec::new();
    if c.alarms.is_empty() && c.prefix.is_none() {
        out.push("no alarms to watch: give `alarms: [NAME]` or `prefix`".into());
    }
    if c.alarms.iter().any(|a| a.trim().is_empty()) || c.prefix.as_deref() == Some("") {
        out.push("an alarm name or prefix is empty".into());
    }
    if c.interval.0.is_zero() {
        out.push("`interval` must be longer than 0s".into());
    }
    if c.timeout.0.is_zero() {
        out.push("`timeout` must be longer than 0s".into());
    }
    out
}

/// Starts the probe: one read of every alarm each `interval`. The client is built at
/// the first read, through the standard AWS chain.
pub fn spawn(
    c: &CloudwatchProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    let problems = check(c);
    if !problems.is_empty() {
        return Err(ProbeError::Invalid(problems));
    }
    let spec = Arc::new(c.clone());
    let client: Arc<OnceCell<CloudWatch>> = Arc::default();
    Ok(crate::every(c.interval.0, recorder, cancel, move |due| {
        let (spec, client) = (spec.clone(), client.clone());
        async move {
            let read = async {
                let cw = client
                    .get_or_try_init(|| {
                        CloudWatch::connect(&AwsOptions {
                            region: spec.region.clone(),
                            endpoint_url: spec.endpoint_url.clone(),
                            ..AwsOptions::default()
                        })
                    })
                    .await?;
                alarm_states(cw, &spec.alarms, spec.prefix.as_deref()).await
            };
            match tokio::time::timeout_at(due + spec.timeout.0, read).await {
                Ok(Ok(states)) => (true, Some(states.alarm.len() as f64)),
                _ => (false, None),
            }
        }
    }))
}
