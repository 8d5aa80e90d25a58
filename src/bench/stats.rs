//! The goodness-of-fit statistics the benchmarks report.
//!
//! Floats are fine here: these numbers describe a run, they never decide a
//! block's validity. p-values come from the regularized upper incomplete
//! gamma function (chi-square and G tests) and the Kolmogorov distribution
//! (KS test); both are checked against tabulated values in the tests.

/// A test statistic with its degrees of freedom and p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Test {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom (0 where the test has none).
    pub df: usize,
    /// Probability of a statistic at least this extreme under the null.
    pub p_value: f64,
}

/// Pearson's chi-square goodness of fit of `observed` counts against the
/// probabilities `probs` (which sum to 1); df = k − 1.
pub(crate) fn chi_square_gof(observed: &[u64], probs: &[f64]) -> Test {
    let n: f64 = observed.iter().map(|o| *o as f64).sum();
    let statistic = observed
        .iter()
        .zip(probs)
        .map(|(o, p)| {
            let e = n * p;
            (*o as f64 - e).powi(2) / e
        })
        .sum();
    chi_square_test(statistic, observed.len().saturating_sub(1))
}

/// The G-test (likelihood ratio) of `observed` against `probs`; df = k − 1.
pub(crate) fn g_test(observed: &[u64], probs: &[f64]) -> Test {
    let n: f64 = observed.iter().map(|o| *o as f64).sum();
    let statistic = 2.0
        * observed
            .iter()
            .zip(probs)
            .filter(|(o, _)| **o > 0)
            .map(|(o, p)| {
                let o = *o as f64;
                o * (o / (n * p)).ln()
            })
            .sum::<f64>();
    chi_square_test(statistic, observed.len().saturating_sub(1))
}

/// Chi-square test of homogeneity of two samples of counts over the same k
/// categories (a 2 × k contingency table); df = k − 1.
pub(crate) fn chi_square_two_sample(a: &[u64], b: &[u64]) -> Test {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    let n = na + nb;
    let statistic = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x + **y > 0)
        .map(|(x, y)| {
            let column = (*x + *y) as f64;
            let (ea, eb) = (na * column / n, nb * column / n);
            (*x as f64 - ea).powi(2) / ea + (*y as f64 - eb).powi(2) / eb
        })
        .sum();
    chi_square_test(statistic, a.len().saturating_sub(1))
}

/// The Wilson score interval of a binomial proportion: `successes` of
/// `n`, at `z` standard errors (1.96 for 95%). Unlike `p ± z·se` it stays
/// inside [0, 1] and keeps its coverage for small counts.
pub(crate) fn wilson(successes: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Total-variation distance between two distributions: ½ Σ |p − q|.
pub(crate) fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// The largest |p − q| over the categories.
pub(crate) fn max_abs_dev(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

/// The median of benchmark runs (sorts `values`); 0 for none.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// One-sample Kolmogorov–Smirnov test of `samples` against the exponential
/// distribution with the given (known, not estimated) mean.
pub(crate) fn ks_exponential(samples: &[f64], mean: f64) -> Test {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let statistic = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = 1.0 - (-x / mean).exp();
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max);
    // Stephens' small-sample correction of the asymptotic distribution.
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * statistic;
    Test {
        statistic,
        df: 0,
        p_value: kolmogorov_survival(lambda),
    }
}

fn chi_square_test(statistic: f64, df: usize) -> Test {
    Test {
        statistic,
        df,
        p_value: gamma_q(df as f64 / 2.0, statistic / 2.0),
    }
}

/// P(K > λ) for the Kolmogorov distribution: 2 Σ (−1)^(k−1) e^(−2k²λ²).
fn kolmogorov_survival(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let sum: f64 = (1..=100)
        .map(|k| {
            let k = f64::from(k);
            let sign = if k as u32 % 2 == 1 { 1.0 } else { -1.0 };
            sign * (-2.0 * k * k * lambda * lambda).exp()
        })
        .sum();
    (2.0 * sum).clamp(0.0, 1.0)
}

/// The regularized upper incomplete gamma function Q(a, x) = Γ(a, x)/Γ(a):
/// a power series below x = a + 1, a continued fraction (modified Lentz)
/// above, where each converges fast.
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 || a <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -f64::from(i) * (f64::from(i) - a);
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
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (log_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 by the Lanczos approximation (g = 7, n = 9), with the
/// reflection formula below ½.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFS: [f64; 9] = [
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
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = COEFFS[1..]
        .iter()
        .enumerate()
        .fold(COEFFS[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_runs() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for (n, fact) in [(1u32, 1.0f64), (2, 1.0), (5, 24.0), (11, 3_628_800.0)] {
            assert!(close(ln_gamma(f64::from(n)), fact.ln(), 1e-10), "Γ({n})");
        }
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-10));
    }

    /// Upper-tail chi-square critical values from standard tables.
    #[test]
    fn chi_square_p_values_match_tables() {
        for (x, df, p) in [
            (3.841, 1, 0.05),
            (16.919, 9, 0.05),
            (21.666, 9, 0.01),
            (2.088, 9, 0.99),
            (124.342, 100, 0.05),
        ] {
            let got = chi_square_test(x, df).p_value;
            assert!(close(got, p, 5e-4), "chi2 {x} df {df}: {got} vs {p}");
        }
        assert_eq!(chi_square_test(0.0, 3).p_value, 1.0);
    }

    /// Values from Wilson (1927) as tabulated by Newcombe (1998), table I.
    #[test]
    fn wilson_interval_matches_newcombe() {
        let (lo, hi) = wilson(81, 263, 1.96);
        assert!(close(lo, 0.2553, 5e-4) && close(hi, 0.3662, 5e-4), "{lo} {hi}");
        let (lo, hi) = wilson(0, 10, 1.96);
        assert!(lo == 0.0 && close(hi, 0.2775, 5e-4), "{lo} {hi}");
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn kolmogorov_distribution_matches_tables() {
        for (lambda, p) in [(1.358, 0.05), (1.628, 0.01), (1.224, 0.10)] {
            assert!(close(kolmogorov_survival(lambda), p, 1e-3), "λ {lambda}");
        }
    }

    #[test]
    fn perfect_fit_has_zero_statistics_and_p_one() {
        let probs = [0.1, 0.2, 0.3, 0.4];
        let counts = [100, 200, 300, 400];
        let chi = chi_square_gof(&counts, &probs);
        assert_eq!((chi.statistic, chi.df), (0.0, 3));
        assert!(close(chi.p_value, 1.0, 1e-12));
        assert!(close(g_test(&counts, &probs).statistic, 0.0, 1e-9));
        assert_eq!(total_variation(&probs, &probs), 0.0);
        assert_eq!(chi_square_two_sample(&counts, &counts).statistic, 0.0);
    }

    #[test]
    fn a_biased_sample_is_detected() {
        let probs = [0.5, 0.5];
        let chi = chi_square_gof(&[5_300, 4_700], &probs);
        assert!(close(chi.statistic, 36.0, 1e-9));
        assert!(chi.p_value < 1e-8);
        assert!(close(max_abs_dev(&[0.53, 0.47], &probs), 0.03, 1e-12));
        assert!(close(total_variation(&[0.53, 0.47], &probs), 0.03, 1e-12));
        assert!(chi_square_two_sample(&[5_300, 4_700], &[4_700, 5_300]).p_value < 1e-8);
    }

    #[test]
    fn ks_accepts_exponential_quantiles_and_rejects_uniform() {
        let n = 2_000;
        let exponential: Vec<f64> = (0..n)
            .map(|i| -(1.0 - (i as f64 + 0.5) / n as f64).ln() * 3.0)
            .collect();
        let fit = ks_exponential(&exponential, 3.0);
        assert!(fit.statistic < 1e-3 && fit.p_value > 0.99, "{fit:?}");
        let uniform: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) / n as f64 * 6.0).collect();
        assert!(ks_exponential(&uniform, 3.0).p_value < 1e-6);
    }
}
