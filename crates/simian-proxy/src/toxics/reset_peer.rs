//! `reset_peer`: once data (or the close) reaches it, waits `timeout` ms and resets the
//! connection (TCP RST: SO_LINGER 0, then close); the data is dropped. In HTTP mode: each
//! request it applies to waits `timeout` ms, then the connection is reset unanswered.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResetPeer {
    /// Milliseconds.
    pub timeout: i64,
}

impl ResetPeer {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::non_negative("timeout", self.timeout)
    }
    pub fn after(&self) -> Duration {
        Duration::from_millis(self.timeout.max(0) as u64)
    }
}
