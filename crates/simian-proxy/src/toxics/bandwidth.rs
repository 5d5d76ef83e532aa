//! `bandwidth`: passes data at `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy), in pieces
//! of at most 100 ms worth. A rate of 0 lets nothing through (Toxiproxy behaves so too).

use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Bandwidth {
    /// KB/s.
    pub rate: i64,
}

impl Bandwidth {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::non_negative("rate", self.rate)
    }

    /// The largest piece sent at once: 100 ms worth of bytes.
    pub fn piece(&self) -> usize {
        (self.rate.max(1) as usize).saturating_mul(100)
    }

    /// When a piece of `len` bytes has gone out, given when the link was free (`free`);
    /// `None` when nothing ever goes out (rate 0).
    pub fn release(&self, free: Option<Instant>, now: Instant, len: usize) -> Option<Instant> {
        if self.rate <= 0 {
            return None;
        }
        let start = free.map_or(now, |f| f.max(now));
        // rate KB/s == rate bytes per ms.
        Some(
            start + Duration::from_nanos((len as u64).saturating_mul(1_000_000) / self.rate as u64),
        )
    }
}
