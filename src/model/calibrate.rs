//! σ calibration: one factor per parameter so that, on held-out stars, |Δ| < σ for 68.27 % of them.
//!
//! A Gaussian NLL fit reports σ that are right on average over the training set, but over-fitting
//! makes them too small on new stars, and a fine-tuned model sees a different survey. The factor is
//! the 68.27th percentile of |Δ|/σ on the validation split, so it targets exactly the coverage that
//! `evaluate` reports, and a few gross outliers cannot inflate it as an RMS would.

/// Fewer validation stars than this leave σ unscaled (factor 1): a percentile of a handful of stars
/// is noise.
pub const MIN_STARS: usize = 20;

/// Per-parameter factors from standardised outputs and standardised reference labels.
pub fn sigma_scale(outputs: &[[f32; 6]], labels: &[f32]) -> [f64; 3] {
    let n = outputs.len();
    if n < MIN_STARS {
        return [1.0; 3];
    }
    [0, 1, 2].map(|p| {
        let mut z: Vec<f64> = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let sigma = (o[p + 3] as f64).clamp(super::loss::LOG_SIGMA_MIN, super::loss::LOG_SIGMA_MAX).exp();
                (labels[i * 3 + p] as f64 - o[p] as f64).abs() / sigma
            })
            .collect();
        let q = super::metrics::quantile(&mut z, 0.6827);
        if q.is_finite() && q > 0.0 { q } else { 1.0 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn doubles_sigma_that_is_half_the_true_scatter() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0, 1.0).unwrap();
        let n = 20_000;
        let mut outputs = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            // True scatter 1, claimed σ = 0.5 (log σ = ln 0.5) for every parameter.
            outputs.push([0.0, 0.0, 0.0, 0.5f32.ln(), 0.5f32.ln(), 0.5f32.ln()]);
            for _ in 0..3 {
                labels.push(noise.sample(&mut rng) as f32);
            }
        }
        for s in sigma_scale(&outputs, &labels) {
            assert!((s - 2.0).abs() < 0.05, "{s}");
        }
        assert_eq!(sigma_scale(&outputs[..5], &labels[..15]), [1.0; 3]);
    }
}
