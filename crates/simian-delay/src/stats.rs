//! Goodness of fit, for the tests and the fidelity bench: Kolmogorov–Smirnov statistics
//! and their asymptotic p-values.

/// One-sample KS statistic `D = sup |F̂(x) − F(x)|` of `samples` against a continuous
/// CDF `cdf`. Sorts `samples` in place.
pub fn ks_one_sample(samples: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    ks_one_sample_atoms(samples, &cdf, &cdf)
}

/// [`ks_one_sample`] against a target with atoms: `below(x) = P(X < x)` and
/// `cdf(x) = P(X ≤ x)`. (For a [`Sampler`](crate::Sampler), whose delays are whole
/// nanoseconds, `below(x)` is `cdf(x − 1 ns)`.) Sorts `samples` in place.
pub fn ks_one_sample_atoms(
    samples: &mut [f64],
    below: impl Fn(f64) -> f64,
    cdf: impl Fn(f64) -> f64,
) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < samples.len() {
        // The empirical CDF steps from i/n to j/n at x (j − i tied samples).
        let x = samples[i];
        let mut j = i;
        while j < samples.len() && samples[j] == x {
            j += 1;
        }
        d = d
            .max((below(x) - i as f64 / n).abs())
            .max((cdf(x) - j as f64 / n).abs());
        i = j;
    }
    d
}

/// Two-sample KS statistic `D = sup |F̂₁(x) − F̂₂(x)|`. Sorts both in place.
pub fn ks_two_sample(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d
}

/// Asymptotic p-value of a KS statistic `d` with effective sample size `n` (for two
/// samples, `n = n₁n₂/(n₁+n₂)`), with Stephens' small-sample correction.
pub fn ks_p_value(d: f64, n: f64) -> f64 {
    let sn = n.sqrt();
    let lambda = (sn + 0.12 + 0.11 / sn) * d;
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// The median of `v` (sorts in place); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_on_a_perfect_grid_is_half_a_step() {
        let n = 1000;
        let mut s: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect();
        let d = ks_one_sample(&mut s, |x| x.clamp(0.0, 1.0));
        assert!((d - 0.5 / n as f64).abs() < 1e-12, "{d}");
    }

    #[test]
    fn two_sample_of_disjoint_sets_is_one() {
        let mut a = vec![1.0, 2.0, 3.0];
        let mut b = vec![4.0, 5.0];
        assert_eq!(ks_two_sample(&mut a, &mut b), 1.0);
        let mut c = vec![1.0, 2.0, 3.0];
        let mut d = vec![3.0, 2.0, 1.0];
        assert_eq!(ks_two_sample(&mut c, &mut d), 0.0);
    }

    #[test]
    fn p_values_match_the_kolmogorov_distribution() {
        // λ = 1.358 is the 5% critical value.
        let n: f64 = 1e6;
        let d = 1.358 / (n.sqrt() + 0.12 + 0.11 / n.sqrt());
        assert!((ks_p_value(d, n) - 0.05).abs() < 1e-3);
        assert_eq!(ks_p_value(0.0, n), 1.0);
        assert!(ks_p_value(0.5, 1000.0) < 1e-12);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
