//! [`Sampler`]: a checked [`DelaySpec`] that draws delays, and knows the exact distribution
//! of what it draws (CDF, quantiles, mean) including the effect of truncation.
//!
//! # Truncation
//!
//! Every delay lies in `[min, max]` (defaults `0s` and `60s`). A draw outside the range is
//! redrawn, up to [`MAX_DRAWS`] draws in all; if all of them fall outside, the last one is
//! clamped to the nearer bound. Redrawing keeps the shape of the distribution inside the
//! range (the result is the distribution conditioned on `[min, max]`), where clamping
//! alone would pile the cut-off tail onto the bounds. The bound on draws keeps the cost
//! of a sample fixed; to make the clamp negligible, a spec whose range holds less than
//! [`MIN_IN_RANGE`] of the distribution is rejected (then at most `0.99^64 ≈ 53%` of
//! samples are clamped; at the usual tail trim — a few percent cut off — the chance is
//! below `1e-80`). [`Sampler::cdf`], [`Sampler::quantile`] and [`Sampler::mean`] describe
//! exactly this procedure, clamp included.

use std::time::Duration;

use rand::Rng;
use simian_core::Dur;

use crate::family::Family;
use crate::spec::{DelaySpec, Distribution};

/// The most draws one sample takes before clamping (see the module docs).
pub const MAX_DRAWS: u32 = 64;

/// The smallest probability `P(min ≤ X ≤ max)` a spec may keep.
pub const MIN_IN_RANGE: f64 = 0.01;

/// The default truncation range, `[0s, 60s]`.
pub const DEFAULT_MIN: Duration = Duration::ZERO;
pub const DEFAULT_MAX: Duration = Duration::from_secs(60);

/// Draws delays from a checked [`DelaySpec`]. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Sampler {
    spec: DelaySpec,
    family: Family,
    /// Truncation bounds, exactly as given and in seconds.
    min: Duration,
    max: Duration,
    lo: f64,
    hi: f64,
    /// `F(lo)`, `P(X > hi)` and `P(lo ≤ X ≤ hi)` of the untruncated distribution.
    below: f64,
    above: f64,
    inside: f64,
}

/// Checks a spec; every problem at once, one message each (`path: problem`, the path
/// relative to the spec, e.g. `distribution.lognormal.sigma: …`). Empty when valid.
pub fn check(spec: &DelaySpec) -> Vec<String> {
    match Sampler::new(spec) {
        Ok(_) => Vec::new(),
        Err(errs) => errs,
    }
}

impl DelaySpec {
    /// A spec with the default range `[0s, 60s]`.
    pub fn new(distribution: Distribution) -> Self {
        DelaySpec {
            distribution,
            min: None,
            max: None,
        }
    }

    /// Every problem with this spec (see [`check`]).
    pub fn validate(&self) -> Vec<String> {
        check(self)
    }

    /// The sampler for this spec, or every problem with it.
    pub fn build(&self) -> Result<Sampler, Vec<String>> {
        Sampler::new(self)
    }
}

impl Sampler {
    /// Checks the spec and builds the sampler; on failure, every problem at once.
    pub fn new(spec: &DelaySpec) -> Result<Sampler, Vec<String>> {
        let mut errs = Vec::new();
        let mut fam_errs = Vec::new();
        let family = Family::build(&spec.distribution, &mut fam_errs);
        errs.extend(fam_errs.into_iter().map(|e| format!("distribution.{e}")));
        let min = spec.min.map_or(DEFAULT_MIN, |d| d.0);
        let max = spec.max.map_or(DEFAULT_MAX, |d| d.0);
        if min > max {
            errs.push(format!(
                "min: must not be greater than max ({} > {})",
                Dur(min),
                Dur(max)
            ));
        }
        let Some(family) = family else {
            return Err(errs);
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let (lo, hi) = (min.as_secs_f64(), max.as_secs_f64());
        let below = family.cdf(lo) - point_mass_at(&family, lo);
        let above = family.sf(hi);
        let inside = (1.0 - below - above).clamp(0.0, 1.0);
        match &family {
            Family::Constant(v) if *v < lo || *v > hi => errs.push(format!(
                "distribution.constant.value: {} is outside [min, max] = [{}, {}]",
                Dur(Duration::from_secs_f64(*v)),
                Dur(min),
                Dur(max)
            )),
            _ if inside < MIN_IN_RANGE => errs.push(format!(
                "min, max: [{}, {}] keeps only {:.3}% of the distribution (at least {}% needed); \
                 truncation is meant to trim tails",
                Dur(min),
                Dur(max),
                inside * 100.0,
                MIN_IN_RANGE * 100.0
            )),
            _ => {}
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Sampler {
            spec: spec.clone(),
            family,
            min,
            max,
            lo,
            hi,
            below,
            above,
            inside,
        })
    }

    /// A sampler for the distribution with the default range `[0s, 60s]`.
    pub fn from_distribution(distribution: &Distribution) -> Result<Sampler, Vec<String>> {
        Sampler::new(&DelaySpec::new(distribution.clone()))
    }

    /// The spec this sampler was built from.
    pub fn spec(&self) -> &DelaySpec {
        &self.spec
    }

    /// The truncation range `[min, max]`.
    pub fn range(&self) -> (Duration, Duration) {
        (self.min, self.max)
    }

    /// One delay, in `[min, max]` (redrawn, then clamped: see the module docs).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        if let Family::Constant(v) = self.family {
            return to_duration(v);
        }
        let mut x = f64::NAN;
        for _ in 0..MAX_DRAWS {
            x = self.family.draw(rng);
            if x >= self.lo && x <= self.hi {
                return to_duration(x);
            }
        }
        // NaN cannot come out of a checked family, but never panic on one.
        if x > self.hi {
            self.max
        } else {
            self.min
        }
    }

    /// Probability that all [`MAX_DRAWS`] draws miss the range.
    fn clamp_prob(&self) -> f64 {
        if matches!(self.family, Family::Constant(_)) {
            0.0
        } else {
            (1.0 - self.inside).powi(MAX_DRAWS as i32)
        }
    }

    /// The output's atoms at `min` and `max` from clamping, and the weight `c` of the
    /// continuous part: `G(x) = atom_lo + c · (F(x) − F(min))` for `min ≤ x < max`.
    fn parts(&self) -> (f64, f64, f64) {
        let r = self.clamp_prob();
        let missed = self.below + self.above;
        let (atom_lo, atom_hi) = if missed > 0.0 {
            (r * self.below / missed, r * self.above / missed)
        } else {
            (0.0, 0.0)
        };
        (atom_lo, atom_hi, (1.0 - r) / self.inside)
    }

    /// `P(sample ≤ x)`: the exact CDF of what [`Sampler::sample`] returns.
    pub fn cdf(&self, x: Duration) -> f64 {
        let x = x.as_secs_f64();
        if let Family::Constant(v) = self.family {
            return f64::from(u8::from(x >= v));
        }
        if x < self.lo {
            return 0.0;
        }
        if x >= self.hi {
            return 1.0;
        }
        let (atom_lo, _, c) = self.parts();
        (atom_lo + c * (self.family.cdf(x) - self.below)).clamp(0.0, 1.0)
    }

    /// `P(sample < x)`. Delays are whole nanoseconds, so this is `cdf(x − 1 ns)`; it
    /// differs from [`Sampler::cdf`] only at atoms (clamped samples, constants, flat
    /// empirical segments).
    pub fn cdf_below(&self, x: Duration) -> f64 {
        match x.checked_sub(Duration::from_nanos(1)) {
            Some(x) => self.cdf(x),
            None => 0.0,
        }
    }

    /// The `p`-quantile of what [`Sampler::sample`] returns (`p` clamped to `[0, 1]`).
    /// Closed forms for every family but gamma, which is inverted numerically.
    pub fn quantile(&self, p: f64) -> Duration {
        let q = self.quantile_secs(p);
        if q <= self.lo {
            self.min
        } else if q >= self.hi {
            self.max
        } else {
            to_duration(q)
        }
    }

    fn quantile_secs(&self, p: f64) -> f64 {
        if let Family::Constant(v) = self.family {
            return v;
        }
        let p = p.clamp(0.0, 1.0);
        let (atom_lo, atom_hi, c) = self.parts();
        if atom_lo > 0.0 && p <= atom_lo {
            return self.lo;
        }
        if atom_hi > 0.0 && p >= 1.0 - atom_hi {
            return self.hi;
        }
        let v = (self.below + (p - atom_lo) / c).clamp(0.0, 1.0);
        self.family.quantile(v).clamp(self.lo, self.hi)
    }

    /// `∫ Q(u) w(u) du` over `[0, 1]` for the output's quantile function `Q`, by
    /// Gauss–Legendre on a mesh graded towards both ends (where heavy tails and the
    /// truncation put the action); ~1e-10 relative for every family here.
    fn integrate_quantile(&self, w: impl Fn(f64) -> f64) -> f64 {
        let (atom_lo, atom_hi, _) = self.parts();
        let mut cuts = vec![0.0, atom_lo, 1.0 - atom_hi, 1.0, 0.5];
        for k in 1..=16 {
            let t = 10f64.powi(-k);
            cuts.push(t);
            cuts.push(1.0 - t);
            cuts.push(3.0 * t);
            cuts.push(1.0 - 3.0 * t);
        }
        if let Family::Empirical(points) = &self.family {
            // The quantile function has kinks at the given percentiles: cut there too.
            let c = self.parts().2;
            cuts.extend(points.iter().map(|&(p, _)| atom_lo + c * (p - self.below)));
        }
        cuts.retain(|c| (0.0..=1.0).contains(c));
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let mut total = 0.0;
        for seg in cuts.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            if b <= a {
                continue;
            }
            let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
            for (x, wt) in GL20 {
                for s in [-1.0, 1.0] {
                    let u = mid + s * half * x;
                    total += half * wt * self.quantile_secs(u) * w(u);
                }
            }
        }
        total
    }

    /// The mean of what [`Sampler::sample`] returns (truncation and clamp included).
    pub fn mean(&self) -> Duration {
        if let Family::Constant(v) = self.family {
            return to_duration(v);
        }
        to_duration(self.integrate_quantile(|_| 1.0))
    }

    /// The L-scale λ₂ = ½·E|X₁ − X₂| of the output, seconds.
    fn l_scale(&self) -> f64 {
        if let Family::Constant(_) = self.family {
            return 0.0;
        }
        self.integrate_quantile(|u| 2.0 * u - 1.0).max(0.0)
    }

    /// Toxiproxy's closest stand-in, `(latency, jitter)`: its latency toxic delays by a
    /// uniform draw from `latency ± jitter`.
    ///
    /// Of all uniform distributions, this is the one closest to ours in Wasserstein-2
    /// distance (the least-squares fit of a straight line to our quantile function), which
    /// works out as matching the first two L-moments: `latency` is our mean (so the mean
    /// added latency, and with it throughput and concurrency, stays the same) and
    /// `jitter = 3·λ₂` (λ₂ = half the mean distance between two draws). Unlike matching
    /// the standard deviation, λ₂ is not dominated by the far tail, so a Pareto does not
    /// turn into a uniform that is mostly wider than the body. A normal becomes
    /// `mean ± 1.69σ`. The jitter is capped at the latency, because Toxiproxy would turn
    /// the negative part into zero delays. Toxiproxy takes whole milliseconds: the caller
    /// rounds.
    pub fn uniform_approximation(&self) -> (Duration, Duration) {
        let mean = self.mean().as_secs_f64();
        let jitter = (3.0 * self.l_scale()).min(mean);
        (to_duration(mean), to_duration(jitter))
    }

    /// One line for plans and logs, e.g.
    /// `lognormal median 20ms σ 0.5, truncated to [0s, 60s]`.
    pub fn describe(&self) -> String {
        let (min, max) = self.range();
        format!(
            "{}, truncated to [{}, {}]",
            self.family.describe(&self.spec.distribution),
            Dur(min),
            Dur(max)
        )
    }
}

/// A point mass exactly at `x` (only the constant family and flat empirical segments have
/// any); `cdf(lo)` minus it is `P(X < lo)`.
fn point_mass_at(family: &Family, x: f64) -> f64 {
    match family {
        Family::Constant(v) => f64::from(u8::from(*v == x)),
        Family::Empirical(points) => {
            let lo = points.iter().position(|&(_, v)| v == x);
            let hi = points.iter().rposition(|&(_, v)| v == x);
            match (lo, hi) {
                (Some(a), Some(b)) => points[b].0 - points[a].0,
                _ => 0.0,
            }
        }
        _ => 0.0,
    }
}

fn to_duration(secs: f64) -> Duration {
    if secs.is_finite() && secs > 0.0 {
        Duration::from_secs_f64(secs)
    } else {
        Duration::ZERO
    }
}

/// 20-point Gauss–Legendre nodes (positive half) and weights on `[-1, 1]`.
const GL20: [(f64, f64); 10] = [
    (0.076_526_521_133_497_33, 0.152_753_387_130_725_85),
    (0.227_785_851_141_645_08, 0.149_172_986_472_603_75),
    (0.373_706_088_715_419_56, 0.142_096_109_318_382_05),
    (0.510_867_001_950_827_1, 0.131_688_638_449_176_63),
    (0.636_053_680_726_515_1, 0.118_194_531_961_518_42),
    (0.746_331_906_460_150_8, 0.101_930_119_817_240_44),
    (0.839_116_971_822_218_8, 0.083_276_741_576_704_75),
    (0.912_234_428_251_326, 0.062_672_048_334_109_06),
    (0.963_971_927_277_913_8, 0.040_601_429_800_386_94),
    (0.993_128_599_185_094_9, 0.017_614_007_139_152_12),
];

#[cfg(test)]
mod tests;
