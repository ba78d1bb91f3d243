//! Accuracy metrics of predictions against reference labels (the paper's definitions, arXiv 2602.15021).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The S/N bins of the coverage tables (median S/N per pixel): from where errors stop being
/// promised (LOW_SNR at 10) through DESI MWS's median (~20) to the bright end.
pub const SNR_BINS: [(f64, f64); 4] = [(4.0, 10.0), (10.0, 20.0), (20.0, 50.0), (50.0, 150.0)];

/// How often |Δ| < σ among the stars of one S/N bin, per parameter (Teff, log g, [Fe/H]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnrCoverage {
    pub snr_min: f64,
    pub snr_max: f64,
    pub n: usize,
    /// NaN-free: 0 stars give 0 (and `n` says so).
    pub within_1sigma: [f64; 3],
}

/// Coverage per [`SNR_BINS`] bin from each star's S/N and whether |Δ| < σ in each parameter;
/// stars outside every bin are not counted.
pub fn coverage_by_snr(stars: &[(f64, [bool; 3])]) -> Vec<SnrCoverage> {
    SNR_BINS
        .iter()
        .map(|&(lo, hi)| {
            let inside: Vec<&[bool; 3]> = stars.iter().filter(|(s, _)| *s >= lo && *s < hi).map(|(_, w)| w).collect();
            let n = inside.len();
            let within = [0, 1, 2].map(|p| inside.iter().filter(|w| w[p]).count() as f64 / n.max(1) as f64);
            SnrCoverage { snr_min: lo, snr_max: hi, n, within_1sigma: within }
        })
        .collect()
}

/// The q-quantile (linear interpolation between order statistics); sorts `v`. NaN when empty.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

pub fn median(v: &[f64]) -> f64 {
    median_in_place(&mut v.to_vec())
}

/// Median by selection (linear time; the bootstrap computes two per resample), reordering `v`.
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (left, &mut upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 { upper } else { (left.iter().copied().fold(f64::NEG_INFINITY, f64::max) + upper) / 2.0 }
}

/// 1.4826 · median(|Δ − median(Δ)|): the standard deviation for Gaussian Δ, blind to outliers.
fn nan() -> f64 {
    f64::NAN
}

pub fn robust_sigma(d: &[f64]) -> f64 {
    let m = median(d);
    1.4826 * median_in_place(&mut d.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
}

/// Tukey biweight scale with tuning constant `c` (the SpecCLIP group's "robust σ" uses c = 6 and a
/// MAD seed), for comparison with their numbers; it is not 1.4826·MAD.
pub fn biweight_scale(d: &[f64], c: f64) -> f64 {
    let n = d.len();
    if n < 2 {
        return f64::NAN;
    }
    let m = median(d);
    let mad = median(&d.iter().map(|x| (x - m).abs()).collect::<Vec<_>>());
    if mad == 0.0 {
        return 0.0;
    }
    let (mut num, mut den) = (0.0, 0.0);
    for x in d {
        let u = (x - m) / (c * mad);
        if u.abs() < 1.0 {
            let u2 = u * u;
            num += (x - m).powi(2) * (1.0 - u2).powi(4);
            den += (1.0 - u2) * (1.0 - 5.0 * u2);
        }
    }
    (n as f64).sqrt() * num.sqrt() / den.abs()
}

fn std_ddof1(d: &[f64]) -> f64 {
    if d.len() < 2 {
        return f64::NAN;
    }
    let m = d.iter().sum::<f64>() / d.len() as f64;
    (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (d.len() - 1) as f64).sqrt()
}

fn mean(d: &[f64]) -> f64 {
    if d.is_empty() { f64::NAN } else { d.iter().sum::<f64>() / d.len() as f64 }
}

/// NaN (a statistic of no stars) is written to JSON as null; read it back as NaN.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A 68 % bootstrap interval (16th and 84th percentiles of the resampled statistic).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    #[serde(deserialize_with = "f64_or_nan")]
    pub lo: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    #[serde(deserialize_with = "f64_or_nan")]
    pub bias: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub sigma: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub robust_sigma: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub biweight_scale: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub mae: f64,
    /// Fraction with |Δ| above the parameter's outlier threshold.
    #[serde(deserialize_with = "f64_or_nan")]
    pub outlier_fraction: f64,
    /// Fraction with |Δ − median| > 3 robust σ.
    #[serde(deserialize_with = "f64_or_nan")]
    pub outlier_3sigma_fraction: f64,
    /// Fraction with |Δ| < σ_pred (68.27 % when the errors are right).
    #[serde(deserialize_with = "f64_or_nan")]
    pub within_1sigma: f64,
    /// Fraction with |Δ| < 2 σ_pred (95.45 % when the errors are right and Gaussian).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub within_2sigma: f64,
    /// Robust σ (1.4826 MAD) of Δ/σ_pred: the width of the pull distribution, 1 when the errors are right.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub z_robust_sigma: f64,
    /// Median of Δ/σ_pred.
    #[serde(deserialize_with = "f64_or_nan")]
    pub median_z: f64,
    pub bias_ci: Interval,
    pub sigma_ci: Interval,
    pub robust_sigma_ci: Interval,
    pub mae_ci: Interval,
    pub outlier_fraction_ci: Interval,
}

struct Core {
    bias: f64,
    sigma: f64,
    robust_sigma: f64,
    mae: f64,
    outlier_fraction: f64,
}

fn core(d: &[f64], threshold: f64) -> Core {
    Core {
        bias: mean(d),
        sigma: std_ddof1(d),
        robust_sigma: if d.is_empty() { f64::NAN } else { robust_sigma(d) },
        mae: mean(&d.iter().map(|x| x.abs()).collect::<Vec<_>>()),
        outlier_fraction: if d.is_empty() {
            f64::NAN
        } else {
            d.iter().filter(|x| x.abs() > threshold).count() as f64 / d.len() as f64
        },
    }
}

/// All metrics of residuals `delta` (pred − reference) with predicted errors `sigma_pred`.
/// Bootstrap intervals use `n_boot` resamples drawn from `seed`.
pub fn compute(delta: &[f64], sigma_pred: &[f64], threshold: f64, n_boot: usize, seed: u64) -> Metrics {
    let n = delta.len();
    let c = core(delta, threshold);
    let frac =
        |f: &dyn Fn(usize) -> bool| if n == 0 { f64::NAN } else { (0..n).filter(|&i| f(i)).count() as f64 / n as f64 };
    let med = median(delta);
    let rs = c.robust_sigma;
    let mut boots: [Vec<f64>; 5] = Default::default();
    if n >= 2 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut sample = vec![0.0; n];
        for _ in 0..n_boot {
            for s in sample.iter_mut() {
                *s = delta[rng.random_range(0..n)];
            }
            let b = core(&sample, threshold);
            for (v, x) in boots.iter_mut().zip([b.bias, b.sigma, b.robust_sigma, b.mae, b.outlier_fraction]) {
                v.push(x);
            }
        }
    }
    let mut ci = boots.map(|mut v| Interval { lo: quantile(&mut v, 0.16), hi: quantile(&mut v, 0.84) });
    let take = |i: usize, ci: &mut [Interval; 5]| ci[i];
    Metrics {
        n,
        bias: c.bias,
        sigma: c.sigma,
        robust_sigma: rs,
        biweight_scale: biweight_scale(delta, 6.0),
        mae: c.mae,
        outlier_fraction: c.outlier_fraction,
        outlier_3sigma_fraction: frac(&|i| (delta[i] - med).abs() > 3.0 * rs),
        within_1sigma: frac(&|i| delta[i].abs() < sigma_pred[i]),
        within_2sigma: frac(&|i| delta[i].abs() < 2.0 * sigma_pred[i]),
        z_robust_sigma: robust_sigma(&(0..n).map(|i| delta[i] / sigma_pred[i]).collect::<Vec<_>>()),
        median_z: median(&(0..n).map(|i| delta[i] / sigma_pred[i]).collect::<Vec<_>>()),
        bias_ci: take(0, &mut ci),
        sigma_ci: take(1, &mut ci),
        robust_sigma_ci: take(2, &mut ci),
        mae_ci: take(3, &mut ci),
        outlier_fraction_ci: take(4, &mut ci),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn coverage_is_counted_per_snr_bin_with_closed_lower_edges() {
        let stars = [
            (3.9, [true; 3]),           // below every bin: not counted
            (4.0, [true, false, true]), // 4-10
            (9.99, [false, false, true]),
            (10.0, [true, true, false]), // 10-20
            (150.0, [true; 3]),          // the top edge is open: not counted
        ];
        let c = coverage_by_snr(&stars);
        assert_eq!(c.iter().map(|b| b.n).collect::<Vec<_>>(), vec![2, 1, 0, 0]);
        assert_eq!(c[0].within_1sigma, [0.5, 0.0, 1.0]);
        assert_eq!(c[1].within_1sigma, [1.0, 1.0, 0.0]);
        assert_eq!(c[2].within_1sigma, [0.0; 3], "an empty bin is 0, with n = 0");
        assert_eq!((c[3].snr_min, c[3].snr_max), (50.0, 150.0));
    }

    use super::*;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn gaussian_residuals_give_their_parameters() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let g = Normal::new(0.1, 2.0).unwrap();
        let d: Vec<f64> = (0..20_000).map(|_| g.sample(&mut rng)).collect();
        let m = compute(&d, &vec![2.0; d.len()], 6.0, 200, 1);
        assert!((m.bias - 0.1).abs() < 0.05);
        assert!((m.sigma - 2.0).abs() < 0.05 && (m.robust_sigma - 2.0).abs() < 0.06);
        // With astropy's default c = 9 the biweight scale of a Gaussian is its σ; the c = 6 of the
        // SpecCLIP papers reads ~5 % high.
        assert!((biweight_scale(&d, 9.0) - 2.0).abs() < 0.04, "{}", biweight_scale(&d, 9.0));
        assert!(m.biweight_scale > 2.0 && m.biweight_scale < 2.16, "{}", m.biweight_scale);
        assert!((m.within_1sigma - 0.6827).abs() < 0.01);
        assert!(m.bias_ci.lo < m.bias && m.bias < m.bias_ci.hi);
        // Width of a 68 % interval of a mean is about σ/√n on each side.
        let half = (m.bias_ci.hi - m.bias_ci.lo) / 2.0;
        assert!((half / (2.0 / (d.len() as f64).sqrt()) - 1.0).abs() < 0.25, "{half}");
        // 3σ outliers of a Gaussian: 0.27 %, about 54 of 20,000 (± 7).
        assert!(m.outlier_fraction > 0.0015 && m.outlier_fraction < 0.004, "{}", m.outlier_fraction);
        // Gross outliers are counted, not absorbed: 1 % more at ±50.
        let mut with_gross = d.clone();
        for v in with_gross.iter_mut().step_by(100) {
            *v = if *v > 0.0 { 50.0 } else { -50.0 };
        }
        let g2 = compute(&with_gross, &vec![2.0; d.len()], 6.0, 50, 1);
        assert!((g2.outlier_fraction - m.outlier_fraction - 0.01).abs() < 0.002, "{}", g2.outlier_fraction);
    }

    #[test]
    fn median_by_selection_matches_sorting() {
        for n in [1usize, 2, 3, 10, 11] {
            let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 * 0.5).collect();
            assert_eq!(median(&v), quantile(&mut v.clone(), 0.5), "n = {n}");
        }
    }

    #[test]
    fn robust_sigma_ignores_a_gross_outlier_and_sigma_does_not() {
        let mut d: Vec<f64> = (0..101).map(|i| (i as f64 - 50.0) / 50.0).collect();
        let clean = robust_sigma(&d);
        d[0] = 1e6;
        assert!((robust_sigma(&d) - clean).abs() / clean < 0.05);
        assert!(std_ddof1(&d) > 1e4);
        assert!(compute(&[], &[], 1.0, 10, 1).bias.is_nan());
    }
}
