//! CloudWatch alarm states, for a probe used as a stop condition (as AWS FIS
//! uses alarms): which of the watched alarms are in ALARM, OK or
//! INSUFFICIENT_DATA. Metric and composite alarms alike.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use crate::config::{load_sdk_config, service_endpoint, CLOUDWATCH};
use crate::{ApiCalls, AwsError, AwsOptions};

/// `AlarmNames` per DescribeAlarms call (CloudWatch's limit).
pub const NAMES_PER_CALL: usize = 100;
/// Pages of one prefix listing before giving up.
const MAX_PAGES: usize = 1000;

/// A CloudWatch client bound to one region. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
    region: String,
    endpoint_url: Option<String>,
    calls: ApiCalls,
}

impl CloudWatch {
    /// Resolves the configuration through the standard chain and builds the
    /// client, with a fresh call counter. The future owns a copy of `opts`
    /// (it can be returned from a closure that made them).
    pub fn connect(
        opts: &AwsOptions,
    ) -> impl Future<Output = Result<Self, AwsError>> + Send + 'static {
        let opts = opts.clone();
        async move {
            let sdk = load_sdk_config(&opts).await;
            let region = sdk.region().ok_or(AwsError::NoRegion)?.to_string();
            let calls = ApiCalls::new();
            let endpoint_url = service_endpoint(CLOUDWATCH, opts.endpoint_url.as_deref(), &sdk);
            let mut conf =
                aws_sdk_cloudwatch::config::Builder::from(&sdk).interceptor(calls.interceptor());
            if let Some(url) = &endpoint_url {
                conf = conf.endpoint_url(url);
            }
            Ok(CloudWatch {
                client: aws_sdk_cloudwatch::Client::from_conf(conf.build()),
                region,
                endpoint_url,
                calls,
            })
        }
    }

    /// The SDK client, for calls this crate does not wrap (counted too).
    pub fn sdk(&self) -> &aws_sdk_cloudwatch::Client {
        &self.client
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint override in use, if any (`None`: AWS's own endpoint).
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    pub fn calls(&self) -> &ApiCalls {
        &self.calls
    }
}

/// The watched alarms by state, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmStates {
    pub alarm: Vec<String>,
    pub ok: Vec<String>,
    pub insufficient_data: Vec<String>,
}

/// The states of the alarms `names` and of those whose name starts with
/// `prefix`. A named alarm that does not exist is an error naming it, and so
/// is a prefix that matches nothing: a stop condition watching nothing
/// would never fire.
pub async fn alarm_states(
    cw: &CloudWatch,
    names: &[String],
    prefix: Option<&str>,
) -> Result<AlarmStates, AwsError> {
    if names.is_empty() && prefix.is_none() {
        return Err(AwsError::Invalid {
            what: "CloudWatch alarms",
            problems: vec!["no alarm names and no prefix: nothing to watch".to_string()],
        });
    }
    let mut states: BTreeMap<String, StateValue> = BTreeMap::new();
    let wanted: BTreeSet<&String> = names.iter().collect();
    let wanted: Vec<String> = wanted.into_iter().cloned().collect();
    for chunk in wanted.chunks(NAMES_PER_CALL) {
        let found = describe(cw, Some(chunk.to_vec()), None).await?;
        let missing: Vec<&String> = chunk.iter().filter(|n| !found.contains_key(*n)).collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
            return Err(AwsError::NotFound(format!(
                "CloudWatch {} {} in {}",
                if missing.len() == 1 {
                    "alarm"
                } else {
                    "alarms"
                },
                list.join(", "),
                cw.region()
            )));
        }
        states.extend(found);
    }
    if let Some(prefix) = prefix {
        let found = describe(cw, None, Some(prefix)).await?;
        if found.is_empty() {
            return Err(AwsError::NotFound(format!(
                "any CloudWatch alarm named `{prefix}...` in {}",
                cw.region()
            )));
        }
        states.extend(found);
    }
    let mut out = AlarmStates::default();
    for (name, state) in states {
        match state {
            StateValue::Alarm => out.alarm.push(name),
            StateValue::Ok => out.ok.push(name),
            // INSUFFICIENT_DATA, and any state CloudWatch adds later: not
            // evidence of a problem, not of health either.
            _ => out.insufficient_data.push(name),
        }
    }
    Ok(out)
}

/// One DescribeAlarms listing (paginated), metric and composite alarms.
async fn describe(
    cw: &CloudWatch,
    names: Option<Vec<String>>,
    prefix: Option<&str>,
) -> Result<BTreeMap<String, StateValue>, AwsError> {
    let mut pages = cw
        .sdk()
        .describe_alarms()
        .set_alarm_names(names)
        .set_alarm_name_prefix(prefix.map(str::to_string))
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .into_paginator()
        .page_size(100)
        .send();
    let mut out = BTreeMap::new();
    let mut n = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::api("DescribeAlarms", e))?;
        let metric = page
            .metric_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        let composite = page
            .composite_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        for (name, state) in metric.chain(composite) {
            if let (Some(name), Some(state)) = (name, state) {
                out.insert(name.to_string(), state.clone());
            }
        }
        n += 1;
        if n >= MAX_PAGES {
            break;
        }
    }
    Ok(out)
}
