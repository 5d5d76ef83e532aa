//! Preparing a run: targets resolved and guards checked, journal opened
//! with its audit header, probes started. Nothing is injected here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::Digest;
use simian_core::Recorder;
use simian_experiment::{Diagnostic, Loaded};
use simian_lab::LabState;
use tokio_util::sync::CancellationToken;

use crate::engine::Prepared;
use crate::journal::{Header, Journal};

pub struct RunOptions {
    pub journal: PathBuf,
    pub seed: u64,
    pub command_line: Vec<String>,
    pub lab: Option<LabState>,
    /// The admin API of the proxies the run started itself (`proxies:`).
    pub run_proxy_api: Option<String>,
    pub tick: Duration,
    /// Leashed mode: resolve targets and run the probes, but only log each action at the
    /// time it would be taken; nothing is injected or reverted.
    pub leashed: bool,
    /// How long a fault outlives the runner's last renewal where its backend can expire it
    /// (the second line behind the guardian); None: no leases.
    pub lease: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("the experiment cannot run as written")]
    Invalid(Vec<Diagnostic>),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("start probe `{probe}`: {error}")]
    Probe { probe: String, error: String },
}

/// Plans, opens the journal and starts the probes. The caller must cancel
/// `probes` when the run ends.
pub async fn prepare(
    loaded: Loaded,
    opts: RunOptions,
    probes: &CancellationToken,
) -> Result<Prepared, PrepareError> {
    let faults = crate::plan::plan(
        &loaded,
        opts.lab.as_ref(),
        opts.run_proxy_api.as_deref(),
        opts.seed,
        opts.lease,
    )
    .await
    .map_err(PrepareError::Invalid)?;
    let header = Header {
        run_id: run_id(&loaded.experiment.name),
        experiment: loaded.experiment.name.clone(),
        file: loaded.file.clone(),
        sha256: sha256_hex(loaded.source.as_bytes()),
        simian_version: env!("CARGO_PKG_VERSION").to_string(),
        user: user(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        command_line: opts.command_line.clone(),
        seed: opts.seed,
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let journal = Journal::create(&opts.journal, header.clone())?;
    let ss = &loaded.experiment.steady_state;
    let retention =
        ss.before.0.max(ss.after.0 + ss.settle.0).max(ss.window.0) + Duration::from_secs(5);
    let mut recorders = BTreeMap::new();
    for (name, spec) in &ss.probes {
        let rec = Arc::new(Recorder::new(retention));
        simian_probes::spawn(spec, rec.clone(), probes.child_token()).map_err(|e| {
            PrepareError::Probe {
                probe: name.clone(),
                error: e.to_string(),
            }
        })?;
        recorders.insert(name.clone(), rec);
    }
    Ok(Prepared {
        loaded,
        faults,
        probes: recorders,
        journal,
        header,
        tick: opts.tick,
        operator: None,
        leashed: opts.leashed,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who runs this: the user name of the process' uid.
pub fn user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => std::env::var("USER").unwrap_or_else(|_| uid.to_string()),
    }
}

/// `20261122T021500Z-chaos-gorilla-1a2b`: sortable, readable, unique enough.
pub fn run_id(name: &str) -> String {
    let ts = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("{ts}-{slug}-{:04x}", (nanos ^ std::process::id()) & 0xffff)
}
