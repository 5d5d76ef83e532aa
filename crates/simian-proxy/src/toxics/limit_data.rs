//! `limit_data`: passes the first `bytes` bytes of the direction, then closes the
//! connection. The count survives updates of the toxic (Toxiproxy keeps it in the stub).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitData {
    pub bytes: i64,
}

impl LimitData {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::non_negative("bytes", self.bytes)
    }
    /// How many more bytes may pass after `sent`.
    pub fn remaining(&self, sent: u64) -> u64 {
        (self.bytes.max(0) as u64).saturating_sub(sent)
    }
}
