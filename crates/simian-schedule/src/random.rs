//! The random trigger, reproducible from a seed.
//!
//! Time is cut into ticks of one minute (counted from the Unix epoch). On each tick inside
//! the windows an experiment fires with probability `tick / (mean × open share of the
//! week)`, so that it runs on average once per `mean` of calendar time. The draw for a
//! tick comes from ChaCha8 keyed by (seed, tick, experiment name): the same seed gives the
//! same sequence, whether it is evaluated by a daemon, by `--once` every minute, or by
//! `--dry-run`, and reordering the file changes nothing.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The chance to fire on one tick inside the windows (capped at 1).
pub fn chance_per_tick(tick: Duration, mean: Duration, open_fraction: f64) -> f64 {
    let open = mean.as_secs_f64() * open_fraction;
    if open <= 0.0 {
        return 0.0;
    }
    (tick.as_secs_f64() / open).min(1.0)
}

/// A uniform number in [0, 1) for (seed, tick, name).
pub fn draw(seed: u64, tick: i64, name: &str) -> f64 {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&tick.to_le_bytes());
    key[16..24].copy_from_slice(&fnv1a(name.as_bytes()).to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(key);
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the experiment fires on this tick (the windows are the caller's to check).
pub fn fires(seed: u64, tick: i64, name: &str, chance: f64) -> bool {
    draw(seed, tick, name) < chance
}

/// FNV-1a: a stable hash (std's hasher may change between Rust versions).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let a: Vec<f64> = (0..100).map(|t| draw(7, t, "x")).collect();
        let b: Vec<f64> = (0..100).map(|t| draw(7, t, "x")).collect();
        let c: Vec<f64> = (0..100).map(|t| draw(8, t, "x")).collect();
        let d: Vec<f64> = (0..100).map(|t| draw(7, t, "y")).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn the_chance_spreads_the_mean_over_the_open_time() {
        let day = Duration::from_secs(86400);
        let p = chance_per_tick(Duration::from_secs(60), 2 * day, 1.0);
        assert!((p - 1.0 / 2880.0).abs() < 1e-12);
        // Open a quarter of the week: four times the chance while open.
        let q = chance_per_tick(Duration::from_secs(60), 2 * day, 0.25);
        assert!((q - 4.0 / 2880.0).abs() < 1e-12);
        assert_eq!(
            chance_per_tick(Duration::from_secs(60), Duration::from_secs(1), 1.0),
            1.0
        );
        assert_eq!(chance_per_tick(Duration::from_secs(60), day, 0.0), 0.0);
    }
}
