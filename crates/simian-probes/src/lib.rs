//! Probes: open-loop HTTP load, TCP connects, commands, Prometheus queries,
//! replication, CloudWatch alarms; each records
//! [`Observation`](simian_core::Observation)s into a shared
//! [`Recorder`](simian_core::Recorder), from which the engine reads metric windows.
//!
//! Every probe follows the same life cycle: [`check`] a spec (every problem at
//! once), then [`spawn`] it. Actions are scheduled on the clock and latency is
//! measured from the scheduled time, so a stalled system cannot hide its latency.
//! Cancelling the token stops scheduling; actions already started finish (each
//! bounded by its timeout) and are recorded before the task ends. Aborting the
//! returned handle instead drops them unrecorded (commands are killed).
#![forbid(unsafe_code)]

use std::sync::Arc;

use simian_core::Recorder;
use simian_experiment::ProbeSpec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod cli;
pub mod cloudwatch;
pub mod command;
pub mod http;
pub mod prometheus;
pub mod replication;
pub mod tcp;

#[cfg(test)]
mod testutil;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The spec did not pass [`check`]; one message per problem.
    #[error("invalid probe: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Checks a probe spec without running it: every problem, as messages.
pub fn check(spec: &ProbeSpec) -> Vec<String> {
    match spec {
        ProbeSpec::Http(c) => http::check(c),
        ProbeSpec::Tcp(c) => tcp::check(c),
        ProbeSpec::Command(c) => command::check(c),
        ProbeSpec::Prometheus(c) => prometheus::check(c),
        ProbeSpec::Replication(c) => replication::check(c),
        ProbeSpec::Cloudwatch(c) => cloudwatch::check(c),
    }
}

/// Starts the probe on the current tokio runtime; it records into `recorder`
/// until `cancel` fires. Fails, without starting anything, if [`check`] finds problems.
pub fn spawn(
    spec: &ProbeSpec,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    match spec {
        ProbeSpec::Http(c) => http::spawn(c, recorder, cancel, Arc::default()),
        ProbeSpec::Tcp(c) => tcp::spawn(c, recorder, cancel),
        ProbeSpec::Command(c) => command::spawn(c, recorder, cancel),
        ProbeSpec::Prometheus(c) => prometheus::spawn(c, recorder, cancel),
        ProbeSpec::Replication(c) => replication::spawn(c, recorder, cancel),
        ProbeSpec::Cloudwatch(c) => cloudwatch::spawn(c, recorder, cancel),
    }
}

/// Runs `observe(due)` once every `interval`, each on its own task so a slow one
/// does not delay the next, and records what it returns: `(ok, value)`, with the
/// latency counted from `due`. On cancel, waits for the ones in flight.
fn every<F, Fut>(
    interval: std::time::Duration,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    observe: F,
) -> JoinHandle<()>
where
    F: Fn(tokio::time::Instant) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (bool, Option<f64>)> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        let mut running = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                due = ticks.tick() => {
                    while running.try_join_next().is_some() {}
                    let (fut, recorder) = (observe(due), recorder.clone());
                    running.spawn(async move {
                        let (ok, value) = fut.await;
                        let at = tokio::time::Instant::now();
                        recorder.record(simian_core::Observation { at, ok, latency: at - due, value });
                    });
                }
            }
        }
        while running.join_next().await.is_some() {}
    })
}

/// `Ok` when [`check`] found nothing; the problems as [`ProbeError::Invalid`] otherwise.
fn valid(problems: Vec<String>) -> Result<(), ProbeError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ProbeError::Invalid(problems))
    }
}

/// A duration setting must be above zero: `name` is the field, for the message.
fn check_positive(name: &str, d: simian_core::Dur, problems: &mut Vec<String>) {
    if d.0.is_zero() {
        problems.push(format!("{name}: must be more than 0s"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simian_experiment::{CommandProbe, HttpProbe, TcpProbe};

    fn http(url: &str, rate: f64) -> HttpProbe {
        serde_json::from_value(serde_json::json!({ "url": url, "rate": rate })).unwrap()
    }

    #[test]
    fn check_reports_every_problem_of_a_bad_spec_at_once() {
        let problems = check(&ProbeSpec::Http(http("ftp://example.com/", 0.0)));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("http://"), "{problems:?}");
        assert!(problems[1].starts_with("rate"), "{problems:?}");
    }

    #[test]
    fn check_accepts_good_specs() {
        assert_eq!(
            check(&ProbeSpec::Http(http("http://127.0.0.1:8080/x?y=1", 100.0))),
            Vec::<String>::new()
        );
        let tcp: TcpProbe =
            serde_json::from_value(serde_json::json!({ "address": "localhost:22" })).unwrap();
        assert!(check(&ProbeSpec::Tcp(tcp)).is_empty());
        let cmd: CommandProbe =
            serde_json::from_value(serde_json::json!({ "run": "true" })).unwrap();
        assert!(check(&ProbeSpec::Command(cmd)).is_empty());
    }

    #[test]
    fn check_covers_every_http_field() {
        let mut c = http("https://example.com", 1.0);
        c.rate = f64::NAN;
        c.method = "GE T".into();
        c.timeout = simian_core::Dur::from_secs(0);
        c.expect_status = Some(vec![200, 42]);
        c.headers.insert("bad header".into(), "v".into());
        c.max_in_flight = 0;
        let problems = check(&ProbeSpec::Http(c));
        assert_eq!(problems.len(), 7, "{problems:#?}");
        let more = check(&ProbeSpec::Http(http("http://127.0.0.1:1/", 100_001.0)));
        assert_eq!(more.len(), 1, "{more:?}");
    }

    #[tokio::test]
    async fn spawn_refuses_an_invalid_spec() {
        let r = Arc::new(Recorder::new(std::time::Duration::from_secs(1)));
        let err = spawn(
            &ProbeSpec::Http(http("nope", 1.0)),
            r,
            CancellationToken::new(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("invalid probe: url"), "{err}");
    }
}
