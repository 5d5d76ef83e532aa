//! Where probes put what they observe, and where the engine reads windows of it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::Metrics;

/// One observation: a request answered or failed, a connection made, a command run.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// When the observation completed (for open-loop probes: scheduled time + latency).
    pub at: Instant,
    pub ok: bool,
    /// Measured from when the action was *scheduled*, not when it was sent,
    /// so a stalled system cannot hide its latency (no coordinated omission).
    pub latency: Duration,
    /// A numeric reading, for probes that yield one.
    pub value: Option<f64>,
}

/// A bounded, thread-safe log of observations. Old ones are dropped after `retention`.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    retention: Duration,
    obs: Mutex<VecDeque<Observation>>,
}

impl Recorder {
    pub fn new(retention: Duration) -> Self {
        Recorder {
            started: Instant::now(),
            retention,
            obs: Mutex::new(VecDeque::new()),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn record(&self, o: Observation) {
        let mut q = self.obs.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the log ordered by completion time even when answers arrive out of order.
        let pos = q.iter().rposition(|x| x.at <= o.at).map_or(0, |p| p + 1);
        q.insert(pos, o);
        if let Some(cut) = o.at.checked_sub(self.retention) {
            while q.front().is_some_and(|x| x.at < cut) {
                q.pop_front();
            }
        }
    }

    /// Metrics over the `window` ending at `now`.
    pub fn window(&self, window: Duration, now: Instant) -> Metrics {
        let from = now
            .checked_sub(window)
            .unwrap_or(self.started)
            .max(self.started);
        self.between(from, now)
    }

    /// Metrics over observations completed in `(from, to]`.
    pub fn between(&self, from: Instant, to: Instant) -> Metrics {
        let from = from.max(self.started);
        let q = self.obs.lock().unwrap_or_else(|e| e.into_inner());
        let mut hist =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        let (mut count, mut errors, mut value) = (0u64, 0u64, None);
        let (mut sum, mut min, mut max) = (0f64, f64::INFINITY, 0f64);
        for o in q.iter().filter(|o| o.at > from && o.at <= to) {
            count += 1;
            if !o.ok {
                errors += 1;
            }
            if o.value.is_some() {
                value = o.value;
            }
            let us = o.latency.as_micros().clamp(1, 3_600_000_000) as u64;
            hist.saturating_record(us);
            let s = o.latency.as_secs_f64();
            sum += s;
            min = min.min(s);
            max = max.max(s);
        }
        // hdrhistogram answers with a bucket's top; never report more than was seen.
        let q =
            |p: f64| (count > 0).then(|| (hist.value_at_quantile(p) as f64 / 1e6).clamp(min, max));
        Metrics {
            count,
            errors,
            span: to.saturating_duration_since(from).as_secs_f64(),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            min: (count > 0).then_some(min),
            max: (count > 0).then_some(max),
            mean: (count > 0).then(|| sum / count as f64),
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metric;

    #[tokio::test(start_paused = true)]
    async fn window_metrics_count_only_recent_observations() {
        let r = Recorder::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..100u64 {
            tokio::time::advance(Duration::from_millis(100)).await;
            r.record(Observation {
                at: Instant::now(),
                ok: i % 10 != 0,
                latency: Duration::from_millis(i),
                value: None,
            });
        }
        let now = Instant::now();
        assert_eq!(now - t0, Duration::from_secs(10));
        let all = r.between(t0, now);
        assert_eq!(all.count, 100);
        assert_eq!(all.get(Metric::SuccessRatio), Some(0.9));
        assert_eq!(all.get(Metric::Rate), Some(9.0));
        let last = r.window(Duration::from_secs(5), now);
        assert_eq!(last.count, 50);
        let p99 = last.get(Metric::P99).unwrap();
        assert!((0.098..=0.099).contains(&p99), "p99 {p99}");
        assert_eq!(last.get(Metric::Max), Some(0.099));
        assert!(
            last.get(Metric::P999).unwrap() <= 0.099,
            "a percentile above the max"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn empty_window_has_no_ratio() {
        let r = Recorder::new(Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        let m = r.window(Duration::from_secs(1), Instant::now());
        assert_eq!(m.get(Metric::SuccessRatio), None);
        assert_eq!(m.get(Metric::Rate), Some(0.0));
    }
}
