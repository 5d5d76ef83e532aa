//! `timeout`: drops all data, and closes the connection once no data has reached the toxic
//! for `timeout` ms (Toxiproxy re-arms its timer on every chunk); 0 = never close.
//! Removing it closes the connections it was acting on: their streams lost data
//! (Toxiproxy's `Cleanup` does the same). In HTTP mode: the request is held `timeout` ms
//! (0 = until the client gives up) and the connection closed without an answer.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeout {
    /// Milliseconds; 0 = never.
    pub timeout: i64,
}

impl Timeout {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::non_negative("timeout", self.timeout)
    }
    /// `None` = never.
    pub fn after(&self) -> Option<Duration> {
        (self.timeout > 0).then(|| Duration::from_millis(self.timeout as u64))
    }
}
