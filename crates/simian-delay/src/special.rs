//! The few special functions the closed-form CDFs and quantiles need: the standard normal
//! CDF and its inverse, `ln Γ`, and the regularized incomplete gamma function.
//!
//! Written out here (about a hundred lines) rather than pulling in a statistics crate; each
//! is a textbook algorithm accurate to ~1e-14 relative, far below anything a latency
//! distribution can notice, and the tests check them against known values.

use std::f64::consts::PI;

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized lower incomplete gamma `P(a, x)`, `a > 0`, `x ≥ 0`.
pub(crate) fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        0.0
    } else if x < a + 1.0 {
        gamma_series(a, x)
    } else {
        1.0 - gamma_cont_frac(a, x)
    }
}

/// Regularized upper incomplete gamma `Q(a, x) = 1 − P(a, x)`, accurate in the far tail.
pub(crate) fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        1.0
    } else if x < a + 1.0 {
        1.0 - gamma_series(a, x)
    } else {
        gamma_cont_frac(a, x)
    }
}

fn gamma_prefactor(a: f64, x: f64) -> f64 {
    (-x + a * x.ln() - ln_gamma(a)).exp()
}

/// `P(a, x)` by its power series (converges fast for `x < a + 1`).
fn gamma_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut del = 1.0 / a;
    let mut sum = del;
    for _ in 0..10_000 {
        ap += 1.0;
        del *= x / ap;
        sum += del;
        if del.abs() < sum.abs() * 1e-16 {
            break;
        }
    }
    sum * gamma_prefactor(a, x)
}

/// `Q(a, x)` by its continued fraction (modified Lentz; converges fast for `x ≥ a + 1`).
fn gamma_cont_frac(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    gamma_prefactor(a, x) * h
}

/// Standard normal CDF Φ(z), through `erfc(t) = Q(½, t²)` so both tails keep their precision.
pub(crate) fn norm_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let tail = 0.5 * gamma_q(0.5, 0.5 * z * z);
    if z < 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// Inverse standard normal CDF Φ⁻¹(p) (Acklam's rational approximation, then one Halley
/// step against [`norm_cdf`], which brings it to near machine precision).
pub(crate) fn norm_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    // One Halley step on e = Φ(x) − p; for x > 0 written as (1 − p) − Φ(−x) to keep the
    // upper tail's precision.
    let e = if x > 0.0 {
        (1.0 - p) - norm_cdf(-x)
    } else {
        norm_cdf(x) - p
    };
    let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-13 && ln_gamma(2.0).abs() < 1e-13);
        assert!(close(ln_gamma(0.5), PI.sqrt().ln(), 1e-13));
        assert!(close(ln_gamma(10.0), 362_880.0_f64.ln(), 1e-13));
        assert!(close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-12));
        assert!(close(ln_gamma(100.5), 361.435_540_467_777_6, 1e-13));
    }

    #[test]
    fn incomplete_gamma_matches_closed_forms() {
        // a = 1: P(1, x) = 1 − e^−x.
        for x in [0.01, 0.5, 1.0, 3.0, 20.0] {
            assert!(close(gamma_p(1.0, x), 1.0 - (-x).exp(), 1e-13), "x={x}");
            assert!(close(gamma_q(1.0, x), (-x).exp(), 1e-12), "x={x}");
        }
        // a = 2: P(2, x) = 1 − e^−x (1 + x).
        for x in [0.1, 2.0, 10.0] {
            assert!(close(gamma_p(2.0, x), 1.0 - (-x).exp() * (1.0 + x), 1e-13));
        }
    }

    #[test]
    fn normal_cdf_and_quantile_agree_with_tables() {
        assert!(close(norm_cdf(0.0), 0.5, 1e-15));
        assert!(close(norm_cdf(1.0), 0.841_344_746_068_542_9, 1e-13));
        assert!(close(norm_cdf(-1.959_963_984_540_054), 0.025, 1e-12));
        assert!(close(norm_cdf(-8.0), 6.220_960_574_271_785e-16, 1e-10));
        assert!(close(norm_quantile(0.99), 2.326_347_874_040_841, 1e-13));
        assert!(close(norm_quantile(0.5).abs() + 1.0, 1.0, 1e-15));
        assert!(close(norm_quantile(1e-10), -6.361_340_902_404_056, 1e-12));
        assert!(close(
            norm_quantile(1.0 - 1e-6),
            4.753_424_308_822_899,
            1e-9
        ));
        for p in [1e-6, 0.01, 0.2, 0.5, 0.7, 0.975, 0.999] {
            assert!(close(norm_cdf(norm_quantile(p)), p, 1e-12), "p={p}");
        }
    }
}
