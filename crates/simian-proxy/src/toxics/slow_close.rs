//! `slow_close`: the close (EOF) waits `delay` ms before it is passed on. Data is untouched,
//! so a direction with only this toxic keeps the zero-copy fast path.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowClose {
    /// Milliseconds.
    pub delay: i64,
}

impl SlowClose {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::non_negative("delay", self.delay)
    }
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay.max(0) as u64)
    }
}
