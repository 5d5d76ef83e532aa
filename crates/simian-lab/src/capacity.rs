//! A region's capacity (`lab up --capacity REGION=N`): a token bucket in front of its edge,
//! so that a region asked to take another's users can run out, as a real one would.

use std::sync::Mutex;
use std::time::Instant;

/// Refills `rate` tokens a second, holds at most a tenth of a second's worth (at least one),
/// so that short bursts pass but no second serves much more than `rate`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// Full at first. `rate` ≥ 1 requests per second.
    pub fn new(rate: u32) -> Self {
        Self::starting_at(rate, Instant::now())
    }

    fn starting_at(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        let burst = (rate / 10.0).max(1.0);
        TokenBucket {
            rate,
            burst,
            state: Mutex::new((burst, now)),
        }
    }

    /// Takes one token now; false when there is none (shed the request).
    pub fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap();
        let (tokens, last) = &mut *state;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Offers `per_second` evenly spaced requests for `secs` seconds; counts those let through.
    fn offer(bucket: &TokenBucket, start: Instant, per_second: u32, secs: u32) -> u32 {
        let gap = Duration::from_secs(1) / per_second;
        (0..per_second * secs)
            .filter(|i| bucket.take_at(start + gap * *i))
            .count() as u32
    }

    #[test]
    fn steady_load_above_the_rate_is_cut_to_the_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::starting_at(50, start);
        let passed = offer(&bucket, start, 150, 2);
        // 2s at 50/s, plus the first burst of 5.
        assert!((100..=106).contains(&passed), "{passed}");
    }

    #[test]
    fn load_below_the_rate_all_passes() {
        let start = Instant::now();
        let bucket = TokenBucket::starting_at(200, start);
        assert_eq!(offer(&bucket, start, 100, 3), 300);
    }

    #[test]
    fn a_burst_passes_only_up_to_a_tenth_of_a_second() {
        let start = Instant::now();
        let bucket = TokenBucket::starting_at(200, start);
        let passed = (0..100).filter(|_| bucket.take_at(start)).count();
        assert_eq!(passed, 20);
        // Idle for long: still no more than the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| bucket.take_at(later)).count(), 20);
        // A slow rate still lets one through.
        let slow = TokenBucket::starting_at(1, start);
        assert!(slow.take_at(start));
        assert!(!slow.take_at(start + Duration::from_millis(500)));
        assert!(slow.take_at(start + Duration::from_millis(1000)));
    }
}
