//! A PromQL query against a Prometheus server at an interval; its number is `value`.

use std::sync::Arc;

use simian_core::Recorder;
use simian_experiment::PrometheusProbe;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Every problem of a spec, as messages.
pub fn check(_c: &PrometheusProbe) -> Vec<String> {
    Vec::new()
}

pub fn spawn(
    c: &PrometheusProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    let _ = (c, recorder, cancel);
    Err(ProbeError::Invalid(vec![
        "prometheus probes are not built yet".into(),
    ]))
}
