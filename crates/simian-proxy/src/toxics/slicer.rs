//! `slicer`: cuts each chunk into pieces of about `average_size` ± `size_variation` bytes
//! (Toxiproxy's recursive halving) and waits `delay` µs after each piece.

use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Slicer {
    pub average_size: i64,
    pub size_variation: i64,
    /// Microseconds after each piece.
    pub delay: i64,
}

impl Slicer {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::non_negative("size_variation", self.size_variation)?;
        super::non_negative("delay", self.delay)?;
        if self.average_size < 1 {
            return Err(format!(
                "`average_size` must be at least 1 byte (got {})",
                self.average_size
            ));
        }
        if self.size_variation >= self.average_size {
            return Err(format!(
                "`size_variation` ({}) must be less than `average_size` ({})",
                self.size_variation, self.average_size
            ));
        }
        Ok(())
    }

    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.delay.max(0) as u64)
    }

    /// The pieces of a chunk of `len` bytes, as (offset, length), in order.
    pub fn slices(&self, len: usize) -> Vec<(usize, usize)> {
        let avg = self.average_size.max(1) as usize;
        let var = self.size_variation.max(0) as usize;
        let mut rng = rand::rng();
        let mut out = Vec::new();
        // Depth-first over [start, end), right half pushed first so pieces come out in order.
        let mut stack = vec![(0usize, len)];
        while let Some((start, end)) = stack.pop() {
            let size = end - start;
            if size <= avg + var || size < 2 {
                if size > 0 {
                    out.push((start, size));
                }
                continue;
            }
            let jitter = if var > 0 {
                rng.random_range(0..2 * var) as isize - var as isize
            } else {
                0
            };
            let mid = (start + size / 2)
                .saturating_add_signed(jitter)
                .clamp(start + 1, end - 1);
            stack.push((mid, end));
            stack.push((start, mid));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_chunk_in_order_near_the_average() {
        let s = Slicer {
            average_size: 100,
            size_variation: 20,
            delay: 0,
        };
        for len in [0, 1, 99, 120, 121, 1000, 32768] {
            let pieces = s.slices(len);
            let mut at = 0;
            for &(off, n) in &pieces {
                assert_eq!(off, at);
                assert!(n > 0 && n <= 120, "{len}: piece of {n}");
                at += n;
            }
            assert_eq!(at, len);
        }
        let s = Slicer {
            average_size: 1,
            size_variation: 0,
            delay: 0,
        };
        assert_eq!(s.slices(5).len(), 5);
    }
}
