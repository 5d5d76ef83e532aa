//! Records written through one region and read through another.

use std::sync::Arc;

use simian_core::Recorder;
use simian_experiment::ReplicationProbe;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Every problem of a spec, as messages.
pub fn check(_c: &ReplicationProbe) -> Vec<String> {
    Vec::new()
}

pub fn spawn(
    c: &ReplicationProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    let _ = (c, recorder, cancel);
    Err(ProbeError::Invalid(vec![
        "replication probes are not built yet".into(),
    ]))
}
