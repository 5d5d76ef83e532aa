//! `latency`: every chunk (TCP) or request/response (HTTP) waits `latency` ± `jitter` ms,
//! or, beyond Toxiproxy, a delay drawn from `distribution` (a `simian_delay::Distribution`)
//! truncated to [`min`, `max`]. With `distribution`, `latency` and `jitter` are ignored.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use simian_core::Dur;
use simian_delay::{DelaySpec, Distribution};

use super::ms_number;
use crate::delay::Sampler;
use crate::error::ApiError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Milliseconds (fractions allowed, an extension).
    #[serde(serialize_with = "ms_number")]
    pub latency: f64,
    /// ± milliseconds, uniform.
    #[serde(serialize_with = "ms_number")]
    pub jitter: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Dur>,
    #[serde(skip)]
    sampler: Option<Arc<Sampler>>,
}

impl Latency {
    /// Checks the distribution and builds its sampler.
    pub(super) fn build(mut self) -> Result<Self, ApiError> {
        match &self.distribution {
            Some(d) => {
                let spec = DelaySpec {
                    distribution: d.clone(),
                    min: self.min,
                    max: self.max,
                };
                let sampler = Sampler::new(&spec).map_err(|p| ApiError::bad_body(p.join("; ")))?;
                self.sampler = Some(Arc::new(sampler));
            }
            None if self.min.is_some() || self.max.is_some() => return Err(ApiError::bad_body(
                "`min` and `max` bound a `distribution`; without one, use `latency` and `jitter`",
            )),
            None => self.sampler = None,
        }
        Ok(self)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        for (name, v) in [("latency", self.latency), ("jitter", self.jitter)] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "`{name}` must be a non-negative number of milliseconds (got {v})"
                ));
            }
        }
        Ok(())
    }

    /// One delay: a sample of the distribution, or `latency` ± `jitter` (uniform, never below 0).
    pub fn delay(&self) -> Duration {
        let mut rng = rand::rng();
        if let Some(s) = &self.sampler {
            return s.sample(&mut rng);
        }
        let mut ms = self.latency;
        if self.jitter > 0.0 {
            ms += rng.random_range(-self.jitter..self.jitter);
        }
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_range() {
        let l = Latency {
            latency: 10.0,
            jitter: 2.0,
            ..Default::default()
        }
        .build()
        .unwrap();
        for _ in 0..1000 {
            let d = l.delay();
            assert!(
                d >= Duration::from_millis(8) && d <= Duration::from_millis(12),
                "{d:?}"
            );
        }
        let l = Latency {
            latency: 1.0,
            jitter: 5.0,
            ..Default::default()
        }
        .build()
        .unwrap();
        assert!((0..1000).all(|_| l.delay() <= Duration::from_millis(6)));
    }

    #[test]
    fn a_distribution_replaces_latency_and_jitter() {
        let l: Latency = serde_json::from_value(serde_json::json!({
            "latency": 1000, "distribution": {"constant": {"value": "250us"}}
        }))
        .unwrap();
        let l = l.build().unwrap();
        assert_eq!(l.delay(), Duration::from_micros(250));
        let e = Latency {
            min: Some(Dur::from_millis(1)),
            ..Default::default()
        }
        .build()
        .unwrap_err();
        assert!(e.message.contains("distribution"), "{e}");
    }
}
