//! The sampler against theory: validation, moments, quantiles, KS, truncation, and the
//! written shape of each family. Fixed seeds, so every figure is deterministic.

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use simian_core::Dur;

use super::*;
use crate::family::Z99;
use crate::stats::{ks_one_sample_atoms, ks_two_sample};

/// Parses YAML the way the experiment loader does: YAML → JSON value → serde (so a family
/// is a one-key map, `{lognormal: {…}}`, rather than serde_yaml's `!lognormal` tag).
fn parse(yaml: &str) -> Result<DelaySpec, String> {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let v = serde_json::to_value(v).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn spec(yaml: &str) -> DelaySpec {
    parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn sampler(yaml: &str) -> Sampler {
    Sampler::new(&spec(yaml)).unwrap_or_else(|e| panic!("{yaml}: {e:?}"))
}

fn errors(yaml: &str) -> Vec<String> {
    let errs = check(&spec(yaml));
    assert!(!errs.is_empty(), "{yaml} should be invalid");
    errs
}

fn ms(x: f64) -> Duration {
    Duration::from_secs_f64(x / 1e3)
}

fn draw(s: &Sampler, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| s.sample(&mut rng).as_secs_f64()).collect()
}

/// One-sample KS of delays (seconds) against the sampler's own exact CDF.
fn ks(s: &Sampler, xs: &mut [f64]) -> f64 {
    ks_one_sample_atoms(
        xs,
        |x| s.cdf_below(Duration::from_secs_f64(x)),
        |x| s.cdf(Duration::from_secs_f64(x)),
    )
}

/// The targets the tests hold every family to (and the names they print under).
const FAMILIES: &[(&str, &str)] = &[
    ("uniform", "distribution: {uniform: {min: 10ms, max: 30ms}}"),
    (
        "normal",
        "distribution: {normal: {mean: 20ms, stddev: 5ms}}",
    ),
    (
        "lognormal",
        "distribution: {lognormal: {median: 20ms, sigma: 0.5}}",
    ),
    (
        "lognormal p50/p99",
        "distribution: {lognormal: {p50: 20ms, p99: 80ms}}",
    ),
    (
        "pareto",
        "{distribution: {pareto: {scale: 5ms, shape: 2.5}}, max: 1s}",
    ),
    ("exponential", "distribution: {exponential: {mean: 10ms}}"),
    ("gamma", "distribution: {gamma: {shape: 2.0, scale: 5ms}}"),
    (
        "gamma small shape",
        "distribution: {gamma: {shape: 0.5, scale: 10ms}}",
    ),
    (
        "weibull",
        "distribution: {weibull: {scale: 20ms, shape: 1.5}}",
    ),
    (
        "empirical",
        "distribution: {empirical: {percentiles: {p10: 2ms, p50: 10ms, p90: 30ms, p99.9: 200ms}}}",
    ),
    (
        "truncated normal",
        "{distribution: {normal: {mean: 20ms, stddev: 10ms}}, min: 15ms, max: 30ms}",
    ),
];

// ---------------------------------------------------------------- validation

#[test]
fn lognormal_reports_every_problem_at_once() {
    let errs = errors("{distribution: {lognormal: {median: 0s, sigma: -0.5}}, min: 2s, max: 1s}");
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("distribution.lognormal.median: must be greater than 0s"));
    assert!(errs[1].starts_with(
        "distribution.lognormal.sigma: must be a finite number greater than 0, got -0.5"
    ));
    assert_eq!(errs[2], "min: must not be greater than max (2s > 1s)");
}

#[test]
fn lognormal_needs_exactly_one_parametrisation() {
    let neither = errors("distribution: {lognormal: {}}");
    assert_eq!(
        neither,
        ["distribution.lognormal: give either `median` and `sigma`, or `p50` and `p99`"]
    );
    let both = errors("distribution: {lognormal: {median: 20ms, sigma: 0.5, p99: 80ms}}");
    assert!(both[0].contains("not both"), "{both:?}");
    let half = errors("distribution: {lognormal: {median: 20ms}}");
    assert_eq!(
        half,
        ["distribution.lognormal.sigma: missing (required with `median`)"]
    );
    let half = errors("distribution: {lognormal: {p99: 20ms}}");
    assert_eq!(
        half,
        ["distribution.lognormal.p50: missing (required with `p99`)"]
    );
    let upside_down = errors("distribution: {lognormal: {p50: 80ms, p99: 20ms}}");
    assert_eq!(
        upside_down,
        ["distribution.lognormal.p99: must be greater than p50 (20ms ≤ 80ms)"]
    );
}

#[test]
fn each_family_checks_its_parameters() {
    let cases: &[(&str, &[&str])] = &[
        (
            "{uniform: {min: 30ms, max: 10ms}}",
            &["distribution.uniform.max: must be greater than uniform.min"],
        ),
        (
            "{uniform: {min: 5ms, max: 5ms}}",
            &["distribution.uniform.max"],
        ),
        (
            "{normal: {mean: 20ms, stddev: 0s}}",
            &["distribution.normal.stddev: must be greater than 0s"],
        ),
        (
            "{pareto: {scale: 0s, shape: 0}}",
            &[
                "distribution.pareto.scale: must be greater than 0s",
                "distribution.pareto.shape: must be a finite number greater than 0, got 0",
            ],
        ),
        (
            "{exponential: {mean: 0s}}",
            &["distribution.exponential.mean: must be greater than 0s"],
        ),
        (
            "{gamma: {shape: -1, scale: 0s}}",
            &[
                "distribution.gamma.shape: must be a finite number greater than 0, got -1",
                "distribution.gamma.scale: must be greater than 0s",
            ],
        ),
        (
            "{weibull: {scale: 0s, shape: -2}}",
            &[
                "distribution.weibull.scale: must be greater than 0s",
                "distribution.weibull.shape: must be a finite number greater than 0, got -2",
            ],
        ),
    ];
    for (dist, want) in cases {
        let errs = errors(&format!("distribution: {dist}"));
        assert_eq!(errs.len(), want.len(), "{dist}: {errs:#?}");
        for (e, w) in errs.iter().zip(*want) {
            assert!(e.starts_with(w), "{dist}: got `{e}`, want `{w}…`");
        }
    }
    // Non-finite numbers (JSON cannot carry them; YAML's `.inf`/`.nan` can).
    let inf = Distribution::Pareto {
        scale: Dur::from_millis(5),
        shape: f64::INFINITY,
    };
    let nan = Distribution::Weibull {
        scale: Dur::from_millis(5),
        shape: f64::NAN,
    };
    assert_eq!(
        check(&DelaySpec::new(inf)),
        ["distribution.pareto.shape: must be a finite number greater than 0, got inf"]
    );
    assert_eq!(
        check(&DelaySpec::new(nan)),
        ["distribution.weibull.shape: must be a finite number greater than 0, got NaN"]
    );
}

#[test]
fn empirical_reports_bad_keys_duplicates_and_decreasing_values_together() {
    let errs = errors(
        "distribution: {empirical: {percentiles: {median: 10ms, p101: 1s, p5x: 1ms, p-1: 1ms, \
         p10: 5ms, p50: 10ms, p50.0: 11ms, p90: 8ms}}}",
    );
    let want = [
        "distribution.empirical.percentiles.median: not a percentile",
        "distribution.empirical.percentiles.p-1: not a percentile",
        "distribution.empirical.percentiles.p101: not a percentile",
        "distribution.empirical.percentiles.p5x: not a percentile",
        "distribution.empirical.percentiles.p50.0: same percentile as `p50`",
        "distribution.empirical.percentiles.p90: must not be below p50.0 (8ms < 11ms)",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "got `{e}`, want `{w}…`");
    }
    let one = errors("distribution: {empirical: {percentiles: {p50: 10ms}}}");
    assert_eq!(
        one,
        ["distribution.empirical.percentiles: give at least two, e.g. `{p50: 10ms, p99: 80ms}`"]
    );
}

#[test]
fn percentile_keys() {
    use crate::family::parse_percentile_key as k;
    for (key, want) in [
        ("p0", 0.0),
        ("p50", 0.5),
        ("p99.9", 0.999),
        ("p99.99", 0.9999),
        ("p100", 1.0),
    ] {
        let got = k(key).unwrap_or_else(|| panic!("{key}"));
        assert!((got - want).abs() < 1e-15, "{key}: {got}");
    }
    for bad in [
        "p", "50", "P50", "p100.1", "p1000", "p.5", "p5.", "p+5", "p 5", "p1e1",
    ] {
        assert_eq!(k(bad), None, "{bad}");
    }
}

#[test]
fn the_range_must_keep_the_distribution() {
    let errs = errors("{distribution: {constant: {value: 100ms}}, max: 50ms}");
    assert_eq!(
        errs,
        ["distribution.constant.value: 100ms is outside [min, max] = [0s, 50ms]"]
    );
    let errs = errors("{distribution: {pareto: {scale: 5ms, shape: 2}}, max: 4ms}");
    assert!(
        errs[0].starts_with("min, max: [0s, 4ms] keeps only 0.000% of the distribution"),
        "{errs:?}"
    );
    // A 2% tail is still a distribution (mostly clamped, but the user asked for it).
    assert!(check(&spec(
        "{distribution: {exponential: {mean: 10ms}}, min: 40ms}"
    ))
    .is_empty());
}

#[test]
fn a_valid_spec_checks_clean_and_describes_itself() {
    let cases = [
        (
            "distribution: {lognormal: {median: 20ms, sigma: 0.5}}",
            "lognormal median 20ms σ 0.5, truncated to [0s, 1m]",
        ),
        (
            "{distribution: {lognormal: {p50: 20ms, p99: 80ms}}, max: 1s}",
            "lognormal p50 20ms p99 80ms (σ 0.596), truncated to [0s, 1s]",
        ),
        (
            "{distribution: {pareto: {scale: 5ms, shape: 2.5}}, max: 1s}",
            "pareto scale 5ms shape 2.5, truncated to [0s, 1s]",
        ),
        (
            "{distribution: {normal: {mean: 20ms, stddev: 5ms}}, min: 1ms}",
            "normal mean 20ms σ 5ms, truncated to [1ms, 1m]",
        ),
        (
            "distribution: {constant: {value: 5ms}}",
            "constant 5ms, truncated to [0s, 1m]",
        ),
        (
            "distribution: {uniform: {min: 1ms, max: 3ms}}",
            "uniform 1ms–3ms, truncated to [0s, 1m]",
        ),
        (
            "distribution: {exponential: {mean: 10ms}}",
            "exponential mean 10ms, truncated to [0s, 1m]",
        ),
        (
            "distribution: {gamma: {shape: 2, scale: 5ms}}",
            "gamma shape 2 scale 5ms, truncated to [0s, 1m]",
        ),
        (
            "distribution: {weibull: {scale: 20ms, shape: 1.5}}",
            "weibull scale 20ms shape 1.5, truncated to [0s, 1m]",
        ),
        (
            "distribution: {empirical: {percentiles: {p99: 80ms, p50: 10ms, p0: 1ms}}}",
            "empirical p0 1ms, p50 10ms, p99 80ms, truncated to [0s, 1m]",
        ),
    ];
    for (yaml, want) in cases {
        assert!(check(&spec(yaml)).is_empty(), "{yaml}");
        assert_eq!(sampler(yaml).describe(), want);
    }
}

#[test]
fn unknown_families_and_fields_are_rejected_by_serde() {
    for (yaml, want) in [
        (
            "distribution: {cauchy: {scale: 1ms}}",
            "unknown variant `cauchy`",
        ),
        (
            "distribution: {normal: {mean: 1ms, sd: 1ms}}",
            "unknown field `sd`",
        ),
        (
            "{distribution: {normal: {mean: 1ms, stddev: 1ms}}, maxx: 1s}",
            "unknown field `maxx`",
        ),
        (
            "distribution: {normal: {mean: -1ms, stddev: 1ms}}",
            "invalid duration `-1ms`",
        ),
    ] {
        let e = parse(yaml).unwrap_err();
        assert!(e.contains(want), "{yaml}: {e}");
    }
}

#[test]
fn json_shape_round_trips() {
    let json = r#"{"distribution":{"lognormal":{"median":"20ms","sigma":0.5}},"max":"1s"}"#;
    let spec: DelaySpec = serde_json::from_str(json).unwrap();
    assert_eq!(spec.max, Some(simian_core::Dur::from_secs(1)));
    let back = serde_json::to_value(&spec).unwrap();
    assert_eq!(back["distribution"]["lognormal"]["median"], "20ms");
    assert_eq!(back["distribution"]["lognormal"]["sigma"], 0.5);
    let again: DelaySpec = serde_json::from_value(back).unwrap();
    assert_eq!(again, spec);
}

// ---------------------------------------------------------------- theory

#[test]
fn closed_form_means_and_quantiles() {
    let close = |a: Duration, b: f64, what: &str| {
        let a = a.as_secs_f64() * 1e3;
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
            "{what}: {a} ms, want {b} ms"
        );
    };
    let s = sampler("distribution: {lognormal: {median: 20ms, sigma: 0.5}}");
    close(s.mean(), 20.0 * (0.125f64).exp(), "lognormal mean");
    close(s.quantile(0.5), 20.0, "lognormal median");
    close(s.quantile(0.99), 20.0 * (0.5 * Z99).exp(), "lognormal p99");
    let s = sampler("distribution: {lognormal: {p50: 20ms, p99: 80ms}}");
    close(s.quantile(0.99), 80.0, "lognormal by p99");
    let s = sampler("{distribution: {pareto: {scale: 5ms, shape: 2.5}}, max: 1s}");
    // Mean of the untruncated Pareto, less the (1s, ∞) tail: α·xm/(α−1)·(1 − (xm/1s)^(α−1)),
    // renormalised by P(X ≤ 1s).
    let (xm, a, hi) = (5.0f64, 2.5f64, 1000.0f64);
    let tail = (xm / hi).powf(a);
    let mean = a * xm / (a - 1.0) * (1.0 - (xm / hi).powf(a - 1.0)) / (1.0 - tail);
    close(s.mean(), mean, "pareto mean");
    close(s.quantile(0.5), 5.0 * 2f64.powf(1.0 / 2.5), "pareto median");
    let s = sampler("distribution: {exponential: {mean: 10ms}}");
    close(s.mean(), 10.0, "exponential mean");
    close(s.quantile(0.5), 10.0 * 2f64.ln(), "exponential median");
    let s = sampler("distribution: {gamma: {shape: 2.0, scale: 5ms}}");
    close(s.mean(), 10.0, "gamma mean");
    // P(2, x) = 1 − e^−x (1 + x) = ½ at x = 1.678346990016661.
    close(s.quantile(0.5), 5.0 * 1.678_346_990_016_661, "gamma median");
    let s = sampler("distribution: {weibull: {scale: 20ms, shape: 1.5}}");
    // Γ(1 + 1/1.5) = Γ(5/3) = 0.9027452929509336.
    close(s.mean(), 20.0 * 0.902_745_292_950_933_6, "weibull mean");
    close(
        s.quantile(0.5),
        20.0 * 2f64.ln().powf(1.0 / 1.5),
        "weibull median",
    );
    let s = sampler("distribution: {normal: {mean: 20ms, stddev: 5ms}}");
    // Truncation at 0 cuts 3.2e-5 of the mass: the mean moves by σ·φ(4)/Φ(4) ≈ 0.7 µs.
    close(
        s.mean(),
        20.0 + 5.0 * 1.338_302_257_648_854e-4 / (1.0 - 3.167_124_183_311_992e-5),
        "normal mean",
    );
    close(
        s.quantile(0.5),
        20.0 + 5.0 * crate::special::norm_quantile(0.5 + 0.5 * 3.167e-5),
        "normal median",
    );
    let s = sampler("distribution: {uniform: {min: 10ms, max: 30ms}}");
    close(s.mean(), 20.0, "uniform mean");
    close(s.quantile(0.25), 15.0, "uniform p25");
}

#[test]
fn cdf_and_quantile_are_inverse() {
    for (name, yaml) in FAMILIES {
        let s = sampler(yaml);
        for p in [0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999] {
            // On the nanosecond grid delays live on: P(X < q) ≤ p ≤ P(X ≤ q + 1ns).
            let q = s.quantile(p);
            let (below, above) = (s.cdf_below(q), s.cdf(q + Duration::from_nanos(1)));
            assert!(
                below <= p + 1e-9 && p <= above + 1e-9,
                "{name}: quantile({p}) = {q:?}, where F = [{below}, {above}]"
            );
        }
    }
}

#[test]
fn sample_statistics_match_theory() {
    const N: usize = 200_000;
    for (i, (name, yaml)) in FAMILIES.iter().enumerate() {
        let s = sampler(yaml);
        let mut xs = draw(&s, N, 1000 + i as u64);
        let (lo, hi) = s.range();
        assert!(
            xs.iter()
                .all(|&x| x >= lo.as_secs_f64() && x <= hi.as_secs_f64()),
            "{name}: range"
        );
        let n = N as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let want = s.mean().as_secs_f64();
        let se = (var / n).sqrt();
        assert!(
            (mean - want).abs() < 5.0 * se,
            "{name}: mean {mean} vs {want} (se {se})"
        );
        // Quantiles, judged on the probability scale so one tolerance fits every family.
        xs.sort_by(f64::total_cmp);
        for p in [0.05, 0.25, 0.5, 0.75, 0.95, 0.99] {
            let q = Duration::from_secs_f64(xs[(p * (n - 1.0)) as usize]);
            // [F(q−), F(q)] must contain p (an interval where the target has an atom).
            let (below, at) = (s.cdf_below(q), s.cdf(q));
            let tol = 5.0 * (p * (1.0 - p) / n).sqrt() + 1e-9;
            assert!(
                p > below - tol && p < at + tol,
                "{name}: sample p{} at F = [{below}, {at}]",
                p * 100.0
            );
        }
    }
}

#[test]
fn kolmogorov_smirnov_against_the_target() {
    // At n = 20 000 the 5% critical value of D is 0.0096; the issue's bar is 0.02.
    const N: usize = 20_000;
    for (i, (name, yaml)) in FAMILIES.iter().enumerate() {
        let s = sampler(yaml);
        let mut xs = draw(&s, N, 2000 + i as u64);
        let d = ks(&s, &mut xs);
        eprintln!("{name:>20}: KS D = {d:.4}");
        // 0.0138 is the 0.1% critical value at n = 20 000.
        assert!(d < 0.0138, "{name}: KS D = {d}");
    }
}

#[test]
fn two_sample_ks_between_seeds_and_against_inverse_transform() {
    // The rand_distr draws against inverse-transform draws through our quantile function:
    // two independent routes to the same distribution.
    let s = sampler("{distribution: {gamma: {shape: 0.7, scale: 10ms}}, max: 200ms}");
    let mut a = draw(&s, 20_000, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut b: Vec<f64> = (0..20_000)
        .map(|_| {
            s.quantile(rand::RngExt::random::<f64>(&mut rng))
                .as_secs_f64()
        })
        .collect();
    let d = ks_two_sample(&mut a, &mut b);
    // Two-sample 5% critical value at 20k/20k: 1.36·√(2/20000) = 0.0136.
    assert!(d < 0.0136, "two-sample D = {d}");
}

#[test]
fn truncation_is_honoured() {
    let s = sampler("{distribution: {normal: {mean: 20ms, stddev: 10ms}}, min: 15ms, max: 30ms}");
    let xs = draw(&s, 50_000, 3);
    assert!(xs.iter().all(|&x| (0.015..=0.030).contains(&x)));
    // Redrawn, not clamped: nothing piles up on the bounds.
    let on_bounds = xs.iter().filter(|&&x| x == 0.015 || x == 0.030).count();
    assert_eq!(on_bounds, 0);
    // A pareto cut at 1 s never exceeds it.
    let s = sampler("{distribution: {pareto: {scale: 5ms, shape: 0.5}}, max: 1s}");
    let xs = draw(&s, 50_000, 4);
    assert!(xs.iter().all(|&x| (0.005..=1.0).contains(&x)));
    assert!(xs.iter().any(|&x| x > 0.9));
}

#[test]
fn when_redraws_run_out_the_clamp_lands_on_the_bound_as_documented() {
    // P(X ≥ 40ms) = e⁻⁴ ≈ 1.8%: (1 − 0.018)^64 ≈ 31% of samples use up every draw.
    let s = sampler("{distribution: {exponential: {mean: 10ms}}, min: 40ms}");
    let xs = draw(&s, 100_000, 5);
    let at_min = xs.iter().filter(|&&x| x == 0.040).count() as f64 / xs.len() as f64;
    let want = s.cdf(ms(40.0));
    assert!(
        (want - (1.0 - (-4f64).exp()).powi(64)).abs() < 1e-9,
        "{want}"
    );
    assert!(
        (at_min - want).abs() < 0.01,
        "clamped {at_min}, documented {want}"
    );
    let mut xs = xs;
    let d = ks(&s, &mut xs);
    assert!(d < 0.01, "KS D = {d}");
    assert!(s.quantile(0.1) == ms(40.0));
}

#[test]
fn empirical_interpolates_between_percentiles() {
    let s = sampler("distribution: {empirical: {percentiles: {p0: 1ms, p50: 10ms, p100: 20ms}}}");
    let close =
        |a: Duration, b: f64| assert!((a.as_secs_f64() * 1e3 - b).abs() < 1e-9, "{a:?} vs {b}");
    close(s.quantile(0.0), 1.0);
    close(s.quantile(0.25), 5.5);
    close(s.quantile(0.5), 10.0);
    close(s.quantile(0.75), 15.0);
    close(s.quantile(1.0), 20.0);
    assert!((s.cdf(ms(15.0)) - 0.75).abs() < 1e-12);
    assert!((s.cdf(ms(5.5)) - 0.25).abs() < 1e-12);
    close(s.mean(), 0.5 * 5.5 + 0.5 * 15.0);

    // p0 and p100 default to the lowest and highest given: flat ends, i.e. atoms.
    let s = sampler("distribution: {empirical: {percentiles: {p50: 10ms, p90: 20ms}}}");
    close(s.quantile(0.1), 10.0);
    close(s.quantile(0.7), 15.0);
    close(s.quantile(0.95), 20.0);
    let xs = draw(&s, 100_000, 6);
    let at_low = xs.iter().filter(|&&x| x == 0.010).count() as f64 / 1e5;
    let at_high = xs.iter().filter(|&&x| x == 0.020).count() as f64 / 1e5;
    assert!(
        (at_low - 0.5).abs() < 0.01 && (at_high - 0.1).abs() < 0.01,
        "{at_low} {at_high}"
    );
    assert!(xs.iter().all(|&x| (0.010..=0.020).contains(&x)));
}

#[test]
fn constant_is_exact() {
    let s = sampler("distribution: {constant: {value: 5ms}}");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!((0..100).all(|_| s.sample(&mut rng) == ms(5.0)));
    assert_eq!(s.mean(), ms(5.0));
    assert_eq!(s.quantile(0.99), ms(5.0));
    assert_eq!(s.uniform_approximation(), (ms(5.0), Duration::ZERO));
}

#[test]
fn uniform_approximation_matches_mean_and_l_scale() {
    let near = |a: Duration, b: f64| (a.as_secs_f64() * 1e3 - b).abs() < 1e-4;
    // A uniform is its own approximation.
    let (l, j) = sampler("distribution: {uniform: {min: 10ms, max: 30ms}}").uniform_approximation();
    assert!(near(l, 20.0) && near(j, 10.0), "{l:?} ± {j:?}");
    // A normal: mean ± 3σ/√π.
    let (l, j) =
        sampler("distribution: {normal: {mean: 100ms, stddev: 10ms}}").uniform_approximation();
    assert!(
        near(l, 100.0) && near(j, 30.0 / std::f64::consts::PI.sqrt()),
        "{l:?} ± {j:?}"
    );
    // An exponential: λ₂ = mean/2, so jitter 1.5·mean, capped at the mean.
    let (l, j) = sampler("distribution: {exponential: {mean: 10ms}}").uniform_approximation();
    assert!(near(l, 10.0) && near(j, 10.0), "{l:?} ± {j:?}");
    // The lognormal of the issue: mean 22.66 ms; λ₂ = e^(μ+σ²/2)·erf(σ/2).
    let (l, j) =
        sampler("distribution: {lognormal: {median: 20ms, sigma: 0.5}}").uniform_approximation();
    let mean = 20.0 * 0.125f64.exp();
    let erf = 1.0 - 2.0 * crate::special::norm_cdf(-0.25 * std::f64::consts::SQRT_2);
    assert!(near(l, mean) && near(j, 3.0 * mean * erf), "{l:?} ± {j:?}");
}

#[test]
fn samplers_are_send_sync_and_take_dyn_rngs() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sampler>();
    let s = sampler("distribution: {exponential: {mean: 10ms}}");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dyn_rng: &mut dyn rand::Rng = &mut rng;
    let _ = s.sample(dyn_rng);
    let _ = s.sample(&mut rand::rng());
}
