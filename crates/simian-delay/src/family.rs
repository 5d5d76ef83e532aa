//! One distribution family with its parameters checked and resolved to seconds: how to draw
//! from it (with `rand_distr`), its CDF and its quantile function.

use std::fmt::Write as _;
use std::time::Duration;

use rand::distr::{Distribution as _, StandardUniform};
use rand::Rng;
use rand_distr::{Exp, Gamma, LogNormal, Normal, Pareto, Uniform, Weibull};
use simian_core::Dur;

use crate::spec::Distribution;
use crate::special::{gamma_p, gamma_q, norm_cdf, norm_quantile};

/// z₀.₉₉, the standard normal 99th percentile: a lognormal's `sigma = ln(p99/p50) / z₀.₉₉`.
pub const Z99: f64 = 2.326_347_874_040_841;

#[derive(Debug, Clone)]
pub(crate) enum Family {
    Constant(f64),
    Uniform {
        lo: f64,
        hi: f64,
        d: Uniform<f64>,
    },
    Normal {
        mean: f64,
        sd: f64,
        d: Normal<f64>,
    },
    Lognormal {
        mu: f64,
        sigma: f64,
        d: LogNormal<f64>,
    },
    Pareto {
        scale: f64,
        shape: f64,
        d: Pareto<f64>,
    },
    Exponential {
        mean: f64,
        d: Exp<f64>,
    },
    Gamma {
        shape: f64,
        scale: f64,
        d: Gamma<f64>,
    },
    Weibull {
        scale: f64,
        shape: f64,
        d: Weibull<f64>,
    },
    /// `(probability, seconds)` points, probabilities strictly increasing from 0 to 1,
    /// seconds non-decreasing.
    Empirical(Vec<(f64, f64)>),
}

fn secs(d: &Dur) -> f64 {
    d.as_secs_f64()
}

/// A shape/sigma-like parameter must be finite and positive.
fn positive(errs: &mut Vec<String>, path: &str, v: f64, hint: &str) -> bool {
    if v.is_finite() && v > 0.0 {
        true
    } else {
        errs.push(format!(
            "{path}: must be a finite number greater than 0, got {v}{hint}"
        ));
        false
    }
}

/// A duration that must not be zero.
fn nonzero(errs: &mut Vec<String>, path: &str, d: &Dur) -> bool {
    if d.0 > Duration::ZERO {
        true
    } else {
        errs.push(format!("{path}: must be greater than 0s"));
        false
    }
}

/// Parses `p50`, `p99.9`, `p0`, `p100` into a probability in `[0, 1]`.
pub(crate) fn parse_percentile_key(key: &str) -> Option<f64> {
    let num = key.strip_prefix('p')?;
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (num, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || int.len() > 3 || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v / 100.0)
}

impl Family {
    /// Checks every parameter, pushing one message per problem (paths relative to the
    /// distribution, e.g. `lognormal.sigma`); returns the family only if all are fine.
    pub(crate) fn build(dist: &Distribution, errs: &mut Vec<String>) -> Option<Family> {
        let before = errs.len();
        let fam = match dist {
            Distribution::Constant { value } => Some(Family::Constant(secs(value))),
            Distribution::Uniform { min, max } => {
                if min >= max {
                    errs.push(format!(
                        "uniform.max: must be greater than uniform.min ({max} ≤ {min}); use `constant` for a fixed delay"
                    ));
                    None
                } else {
                    let (lo, hi) = (secs(min), secs(max));
                    Uniform::new_inclusive(lo, hi)
                        .ok()
                        .map(|d| Family::Uniform { lo, hi, d })
                }
            }
            Distribution::Normal { mean, stddev } => {
                if nonzero(errs, "normal.stddev", stddev) {
                    let (mean, sd) = (secs(mean), secs(stddev));
                    Normal::new(mean, sd)
                        .ok()
                        .map(|d| Family::Normal { mean, sd, d })
                } else {
                    None
                }
            }
            Distribution::Lognormal {
                median,
                sigma,
                p50,
                p99,
            } => Self::lognormal(*median, *sigma, *p50, *p99, errs),
            Distribution::Pareto { scale, shape } => {
                let ok = nonzero(errs, "pareto.scale", scale)
                    & positive(errs, "pareto.shape", *shape, "");
                let (scale, shape) = (secs(scale), *shape);
                ok.then(|| Pareto::new(scale, shape).ok())
                    .flatten()
                    .map(|d| Family::Pareto { scale, shape, d })
            }
            Distribution::Exponential { mean } => {
                let ok = nonzero(errs, "exponential.mean", mean);
                let mean = secs(mean);
                ok.then(|| Exp::new(1.0 / mean).ok())
                    .flatten()
                    .map(|d| Family::Exponential { mean, d })
            }
            Distribution::Gamma { shape, scale } => {
                let ok =
                    positive(errs, "gamma.shape", *shape, "") & nonzero(errs, "gamma.scale", scale);
                let (shape, scale) = (*shape, secs(scale));
                ok.then(|| Gamma::new(shape, scale).ok())
                    .flatten()
                    .map(|d| Family::Gamma { shape, scale, d })
            }
            Distribution::Weibull { scale, shape } => {
                let ok = nonzero(errs, "weibull.scale", scale)
                    & positive(errs, "weibull.shape", *shape, "");
                let (scale, shape) = (secs(scale), *shape);
                ok.then(|| Weibull::new(scale, shape).ok())
                    .flatten()
                    .map(|d| Family::Weibull { scale, shape, d })
            }
            Distribution::Empirical { percentiles } => Self::empirical(percentiles, errs),
        };
        match fam {
            Some(f) if errs.len() == before => Some(f),
            Some(_) => None,
            None => {
                if errs.len() == before {
                    // rand_distr refused parameters our checks let through: say so rather
                    // than fail silently.
                    errs.push(format!("{}: invalid parameters", dist.family_name()));
                }
                None
            }
        }
    }

    fn lognormal(
        median: Option<Dur>,
        sigma: Option<f64>,
        p50: Option<Dur>,
        p99: Option<Dur>,
        errs: &mut Vec<String>,
    ) -> Option<Family> {
        let by_median = median.is_some() || sigma.is_some();
        let by_pct = p50.is_some() || p99.is_some();
        let (mu, sigma) = match (by_median, by_pct) {
            (true, true) => {
                errs.push(
                    "lognormal: give either `median` and `sigma`, or `p50` and `p99`, not both"
                        .into(),
                );
                return None;
            }
            (false, false) => {
                errs.push("lognormal: give either `median` and `sigma`, or `p50` and `p99`".into());
                return None;
            }
            (true, false) => {
                let mut ok = true;
                if median.is_none() {
                    errs.push("lognormal.median: missing (required with `sigma`)".into());
                    ok = false;
                }
                if sigma.is_none() {
                    errs.push("lognormal.sigma: missing (required with `median`)".into());
                    ok = false;
                }
                if let Some(m) = &median {
                    ok &= nonzero(errs, "lognormal.median", m);
                }
                if let Some(s) = sigma {
                    ok &= positive(
                        errs,
                        "lognormal.sigma",
                        s,
                        " (use `constant` for a fixed delay)",
                    );
                }
                if !ok {
                    return None;
                }
                (secs(&median?).ln(), sigma?)
            }
            (false, true) => {
                let mut ok = true;
                if p50.is_none() {
                    errs.push("lognormal.p50: missing (required with `p99`)".into());
                    ok = false;
                }
                if p99.is_none() {
                    errs.push("lognormal.p99: missing (required with `p50`)".into());
                    ok = false;
                }
                if let Some(m) = &p50 {
                    ok &= nonzero(errs, "lognormal.p50", m);
                }
                if let (Some(a), Some(b)) = (&p50, &p99) {
                    if b <= a {
                        errs.push(format!(
                            "lognormal.p99: must be greater than p50 ({b} ≤ {a})"
                        ));
                        ok = false;
                    }
                }
                if !ok {
                    return None;
                }
                let (a, b) = (secs(&p50?), secs(&p99?));
                (a.ln(), (b / a).ln() / Z99)
            }
        };
        LogNormal::new(mu, sigma)
            .ok()
            .map(|d| Family::Lognormal { mu, sigma, d })
    }

    fn empirical(
        percentiles: &std::collections::BTreeMap<String, Dur>,
        errs: &mut Vec<String>,
    ) -> Option<Family> {
        let mut ok = true;
        let mut pts: Vec<(f64, f64, &str)> = Vec::new();
        for (key, d) in percentiles {
            match parse_percentile_key(key) {
                Some(p) => pts.push((p, secs(d), key)),
                None => {
                    errs.push(format!(
                        "empirical.percentiles.{key}: not a percentile; write `p` and a number from 0 to 100, e.g. `p50`, `p99.9`"
                    ));
                    ok = false;
                }
            }
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in pts.windows(2) {
            let ((pa, xa, ka), (pb, xb, kb)) = (w[0], w[1]);
            if pa == pb {
                errs.push(format!(
                    "empirical.percentiles.{kb}: same percentile as `{ka}`"
                ));
                ok = false;
            } else if xb < xa {
                errs.push(format!(
                    "empirical.percentiles.{kb}: must not be below {ka} ({} < {}); percentiles must not decrease",
                    Dur(Duration::from_secs_f64(xb)),
                    Dur(Duration::from_secs_f64(xa)),
                ));
                ok = false;
            }
        }
        if percentiles.len() < 2 {
            errs.push(
                "empirical.percentiles: give at least two, e.g. `{p50: 10ms, p99: 80ms}`".into(),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        let mut points: Vec<(f64, f64)> = pts.iter().map(|&(p, x, _)| (p, x)).collect();
        // p0 and p100 default to the lowest and highest given value.
        if points[0].0 > 0.0 {
            points.insert(0, (0.0, points[0].1));
        }
        let last = points[points.len() - 1];
        if last.0 < 1.0 {
            points.push((1.0, last.1));
        }
        Some(Family::Empirical(points))
    }

    /// One raw draw, in seconds (not yet truncated).
    pub(crate) fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Family::Constant(v) => *v,
            Family::Uniform { d, .. } => d.sample(rng),
            Family::Normal { d, .. } => d.sample(rng),
            Family::Lognormal { d, .. } => d.sample(rng),
            Family::Pareto { d, .. } => d.sample(rng),
            Family::Exponential { d, .. } => d.sample(rng),
            Family::Gamma { d, .. } => d.sample(rng),
            Family::Weibull { d, .. } => d.sample(rng),
            Family::Empirical(points) => {
                let u: f64 = StandardUniform.sample(rng);
                empirical_quantile(points, u)
            }
        }
    }

    /// `P(X ≤ x)`, x in seconds.
    pub(crate) fn cdf(&self, x: f64) -> f64 {
        match self {
            Family::Constant(v) => f64::from(u8::from(x >= *v)),
            Family::Uniform { lo, hi, .. } => ((x - lo) / (hi - lo)).clamp(0.0, 1.0),
            Family::Normal { mean, sd, .. } => norm_cdf((x - mean) / sd),
            Family::Lognormal { mu, sigma, .. } => {
                if x <= 0.0 {
                    0.0
                } else {
                    norm_cdf((x.ln() - mu) / sigma)
                }
            }
            Family::Pareto { scale, shape, .. } => {
                if x <= *scale {
                    0.0
                } else {
                    1.0 - (scale / x).powf(*shape)
                }
            }
            Family::Exponential { mean, .. } => {
                if x <= 0.0 {
                    0.0
                } else {
                    -(-x / mean).exp_m1()
                }
            }
            Family::Gamma { shape, scale, .. } => gamma_p(*shape, x.max(0.0) / scale),
            Family::Weibull { scale, shape, .. } => {
                if x <= 0.0 {
                    0.0
                } else {
                    -(-(x / scale).powf(*shape)).exp_m1()
                }
            }
            Family::Empirical(points) => empirical_cdf(points, x),
        }
    }

    /// `P(X > x)`, computed directly where that keeps precision in the far tail.
    pub(crate) fn sf(&self, x: f64) -> f64 {
        match self {
            Family::Normal { mean, sd, .. } => norm_cdf(-(x - mean) / sd),
            Family::Lognormal { mu, sigma, .. } if x > 0.0 => norm_cdf(-(x.ln() - mu) / sigma),
            Family::Pareto { scale, shape, .. } if x > *scale => (scale / x).powf(*shape),
            Family::Exponential { mean, .. } if x > 0.0 => (-x / mean).exp(),
            Family::Gamma { shape, scale, .. } => gamma_q(*shape, x.max(0.0) / scale),
            Family::Weibull { scale, shape, .. } if x > 0.0 => (-(x / scale).powf(*shape)).exp(),
            _ => 1.0 - self.cdf(x),
        }
    }

    /// The `p`-quantile in seconds, `p` in `[0, 1]`. Closed forms except gamma, which is
    /// inverted numerically (bisection on its CDF to ~1e-12 relative).
    pub(crate) fn quantile(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 1.0);
        match self {
            Family::Constant(v) => *v,
            Family::Uniform { lo, hi, .. } => lo + p * (hi - lo),
            Family::Normal { mean, sd, .. } => mean + sd * norm_quantile(p),
            Family::Lognormal { mu, sigma, .. } => (mu + sigma * norm_quantile(p)).exp(),
            Family::Pareto { scale, shape, .. } => scale * (1.0 - p).powf(-1.0 / shape),
            Family::Exponential { mean, .. } => -mean * (-p).ln_1p(),
            Family::Weibull { scale, shape, .. } => scale * (-(-p).ln_1p()).powf(1.0 / shape),
            Family::Gamma { .. } => {
                if p <= 0.0 {
                    return 0.0;
                }
                if p >= 1.0 {
                    return f64::INFINITY;
                }
                let mut hi = self.quantile_hint();
                while self.cdf(hi) < p {
                    hi *= 2.0;
                }
                let mut lo = 0.0;
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if self.cdf(mid) < p {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                    if hi - lo <= hi * 1e-13 {
                        break;
                    }
                }
                0.5 * (lo + hi)
            }
            Family::Empirical(points) => empirical_quantile(points, p),
        }
    }

    /// A starting upper bracket for numeric inversion: a few means out.
    fn quantile_hint(&self) -> f64 {
        match self {
            Family::Gamma { shape, scale, .. } => (shape * scale * 4.0).max(*scale),
            _ => 1.0,
        }
    }

    /// E.g. `lognormal median 20ms σ 0.5`.
    pub(crate) fn describe(&self, dist: &Distribution) -> String {
        let d = |x: &Dur| x.to_string();
        match dist {
            Distribution::Constant { value } => format!("constant {}", d(value)),
            Distribution::Uniform { min, max } => format!("uniform {}–{}", d(min), d(max)),
            Distribution::Normal { mean, stddev } => {
                format!("normal mean {} σ {}", d(mean), d(stddev))
            }
            Distribution::Lognormal {
                median: Some(m),
                sigma: Some(s),
                ..
            } => format!("lognormal median {} σ {s}", d(m)),
            Distribution::Lognormal {
                p50: Some(a),
                p99: Some(b),
                ..
            } => {
                let sigma = match self {
                    Family::Lognormal { sigma, .. } => *sigma,
                    _ => f64::NAN,
                };
                format!("lognormal p50 {} p99 {} (σ {sigma:.3})", d(a), d(b))
            }
            Distribution::Lognormal { .. } => "lognormal".into(),
            Distribution::Pareto { scale, shape } => {
                format!("pareto scale {} shape {shape}", d(scale))
            }
            Distribution::Exponential { mean } => format!("exponential mean {}", d(mean)),
            Distribution::Gamma { shape, scale } => {
                format!("gamma shape {shape} scale {}", d(scale))
            }
            Distribution::Weibull { scale, shape } => {
                format!("weibull scale {} shape {shape}", d(scale))
            }
            Distribution::Empirical { percentiles } => {
                let mut pts: Vec<(f64, &String, &Dur)> = percentiles
                    .iter()
                    .map(|(k, v)| (parse_percentile_key(k).unwrap_or(f64::NAN), k, v))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut s = String::from("empirical");
                for (i, (_, k, v)) in pts.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    let _ = write!(s, "{sep}{k} {}", d(v));
                }
                s
            }
        }
    }
}

/// Piecewise-linear inverse CDF through the points.
fn empirical_quantile(points: &[(f64, f64)], u: f64) -> f64 {
    let i = points.partition_point(|&(p, _)| p <= u);
    if i == 0 {
        return points[0].1;
    }
    if i >= points.len() {
        return points[points.len() - 1].1;
    }
    let (p0, x0) = points[i - 1];
    let (p1, x1) = points[i];
    x0 + (x1 - x0) * (u - p0) / (p1 - p0)
}

/// The CDF of [`empirical_quantile`]: `sup { u : Q(u) ≤ x }` (flat segments are atoms).
fn empirical_cdf(points: &[(f64, f64)], x: f64) -> f64 {
    if x < points[0].1 {
        return 0.0;
    }
    for w in points.windows(2) {
        let ((p0, x0), (p1, x1)) = (w[0], w[1]);
        if x < x1 {
            return p0 + (p1 - p0) * (x - x0) / (x1 - x0);
        }
    }
    1.0
}

impl Distribution {
    /// The family's tag as written in YAML/JSON (`lognormal`, …).
    pub fn family_name(&self) -> &'static str {
        match self {
            Distribution::Constant { .. } => "constant",
            Distribution::Uniform { .. } => "uniform",
            Distribution::Normal { .. } => "normal",
            Distribution::Lognormal { .. } => "lognormal",
            Distribution::Pareto { .. } => "pareto",
            Distribution::Exponential { .. } => "exponential",
            Distribution::Gamma { .. } => "gamma",
            Distribution::Weibull { .. } => "weibull",
            Distribution::Empirical { .. } => "empirical",
        }
    }
}
