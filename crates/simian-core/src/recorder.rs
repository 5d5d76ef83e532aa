//! Where probes put what they observe, and where the engine reads windows of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::{Metric, Metrics};

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
    /// Gauge readings by time; the last one of each gauge is kept past `retention`.
    gauges: Mutex<BTreeMap<Metric, VecDeque<(Instant, f64)>>>,
}

impl Recorder {
    pub fn new(retention: Duration) -> Self {
        Recorder {
            started: Instant::now(),
            retention,
            obs: Mutex::new(VecDeque::new()),
            gauges: Mutex::default(),
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

    /// Sets gauge `m` (one of [`Metric::GAUGES`]) to `v` as of `at`.
    pub fn set_gauge(&self, at: Instant, m: Metric, v: f64) {
        let mut g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        let q = g.entry(m).or_default();
        let pos = q.iter().rposition(|x| x.0 <= at).map_or(0, |p| p + 1);
        q.insert(pos, (at, v));
        if let Some(cut) = at.checked_sub(self.retention) {
            for q in g.values_mut() {
                while q.len() > 1 && q[1].0 < cut {
                    q.pop_front();
                }
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
        drop(q);
        // hdrhistogram answers with a bucket's top; never report more than was seen.
        let q =
            |p: f64| (count > 0).then(|| (hist.value_at_quantile(p) as f64 / 1e6).clamp(min, max));
        let mut metrics = Metrics {
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
            ..Metrics::default()
        };
        // A gauge reads as its last value set by `to`.
        let gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        for (&m, q) in gauges.iter() {
            if let Some(&(_, v)) = q.iter().rev().find(|x| x.0 <= to) {
                metrics.set_gauge(m, v);
            }
        }
        metrics
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
    async fn a_gauge_reads_as_its_last_value_by_the_window_end() {
        let r = Recorder::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(r.window(Duration::from_secs(1), t0).get(Metric::Lost), None);
        r.set_gauge(t0, Metric::Lost, 0.0);
        tokio::time::advance(Duration::from_secs(1)).await;
        r.set_gauge(Instant::now(), Metric::Lost, 3.0);
        assert_eq!(
            r.window(Duration::from_secs(1), t0).get(Metric::Lost),
            Some(0.0)
        );
        assert_eq!(r.between(t0, Instant::now()).get(Metric::Lost), Some(3.0));
        // Long after: the old readings are dropped, the last one stays.
        tokio::time::advance(Duration::from_secs(60)).await;
        r.set_gauge(Instant::now(), Metric::Queued, 7.0);
        let m = r.window(Duration::from_secs(1), Instant::now());
        assert_eq!(
            (m.get(Metric::Lost), m.get(Metric::Queued)),
            (Some(3.0), Some(7.0))
        );
        assert_eq!(r.gauges.lock().unwrap()[&Metric::Lost].len(), 1);
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
