//! The lab's error type. Messages are lowercase and end with what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong starting, stopping, inspecting or repairing the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab size: {0}")]
    InvalidSpec(String),

    #[error(
        "a lab is already running in {} (supervisor pid {pid}): stop it with `simian lab down` or pick another --state-dir",
        dir.display()
    )]
    AlreadyRunning { dir: PathBuf, pid: u32 },

    #[error("no lab is running in {}: start one with `simian lab up`", dir.display())]
    NotRunning { dir: PathBuf },

    #[error(
        "the lab in {} lost its supervisor (pid {pid} is gone): clean up with `simian lab down`",
        dir.display()
    )]
    SupervisorGone { dir: PathBuf, pid: u32 },

    #[error("--netns needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); without --netns the lab runs on loopback")]
    NetnsPrivileges,

    #[error("--netns needs the `ip` command, which is not installed: install iproute2 (e.g. `apt-get install iproute2`)")]
    NetnsNoIp,

    /// A `--subnet` that cannot be used, or no free one.
    #[error("{0}")]
    Subnet(String),

    /// Creating or removing the lab's network namespaces failed.
    #[error("{0}")]
    Netns(String),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("no instance `{id}` in the lab: `simian lab status` lists the instance and store ids")]
    UnknownInstance { id: String },

    #[error("start the lab: {detail}; see {}", log.display())]
    StartFailed { detail: String, log: PathBuf },

    #[error("talk to the lab supervisor at {}: {detail}", socket.display())]
    Control { socket: PathBuf, detail: String },

    /// The supervisor understood the request and refused or failed it.
    #[error("{0}")]
    Supervisor(String),

    #[error("read the lab state in {}: {source}; remove it or run `simian lab down`", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl LabError {
    /// An I/O error with what was being done, e.g. "create /tmp/x/lab".
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            what: what.into(),
            source,
        }
    }
}
