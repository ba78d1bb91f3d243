//! Out-of-distribution score: how far a spectrum's last-hidden-layer features lie from those of the
//! pre-training set, as a Mahalanobis distance (in σ units of a Gaussian fitted to the training
//! features).
//!
//! The features are always the *base* network's, even under an adapter: the question is whether
//! the pre-trained representation has seen anything like this spectrum, which is where predictions
//! extrapolate. The card stores the mean, the precision matrix and the training set's 99.5th
//! percentile of the score (the catalogue's OOD threshold).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodModel {
    pub dim: usize,
    pub mean: Vec<f64>,
    /// Inverse covariance (row-major dim × dim), with a small ridge for stability.
    pub precision: Vec<f64>,
    /// 99.5th percentile of the training set's scores.
    pub threshold_995: f64,
    /// Median training score (≈ √dim for Gaussian features): a reference for reading scores.
    pub median_train: f64,
}

impl OodModel {
    /// Fits the Gaussian to row-major features (rows × dim). None with fewer rows than dim + 2 or a
    /// covariance that is not positive definite even after the ridge.
    pub fn fit(features: &[f32], dim: usize) -> Option<Self> {
        let n = features.len() / dim.max(1);
        if n < dim + 2 {
            return None;
        }
        let mut mean = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0; dim * dim];
        let mut centred = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for (c, (&v, m)) in centred.iter_mut().zip(row.iter().zip(&mean)) {
                *c = v as f64 - m;
            }
            for i in 0..dim {
                for j in 0..=i {
                    cov[i * dim + j] += centred[i] * centred[j];
                }
            }
        }
        let trace: f64 = (0..dim).map(|i| cov[i * dim + i]).sum::<f64>() / (n - 1) as f64;
        // ReLU features have dead units (zero variance): the ridge keeps them invertible.
        let ridge = 1e-6 * trace / dim as f64 + 1e-12;
        for i in 0..dim {
            for j in 0..=i {
                let v = cov[i * dim + j] / (n - 1) as f64 + if i == j { ridge } else { 0.0 };
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        let precision = invert_spd(&cov, dim)?;
        let mut model = Self { dim, mean, precision, threshold_995: f64::NAN, median_train: f64::NAN };
        let mut scores: Vec<f64> = features.chunks_exact(dim).map(|r| model.score(r)).collect();
        model.threshold_995 = super::metrics::quantile(&mut scores, 0.995);
        model.median_train = super::metrics::quantile(&mut scores, 0.5);
        Some(model)
    }

    /// Mahalanobis distance of one feature vector.
    pub fn score(&self, h: &[f32]) -> f64 {
        let d: Vec<f64> = h.iter().zip(&self.mean).map(|(&v, m)| v as f64 - m).collect();
        let mut q = 0.0;
        for (i, di) in d.iter().enumerate() {
            let row = &self.precision[i * self.dim..(i + 1) * self.dim];
            q += di * row.iter().zip(&d).map(|(p, dj)| p * dj).sum::<f64>();
        }
        q.max(0.0).sqrt()
    }
}

/// Inverse of a symmetric positive-definite matrix by Cholesky factorisation (dim is the hidden
/// width, 64 by default: a hand-written O(dim³) loop is microseconds).
fn invert_spd(a: &[f64], dim: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; dim * dim];
    for i in 0..dim {
        for j in 0..=i {
            let s: f64 = a[i * dim + j] - (0..j).map(|k| l[i * dim + k] * l[j * dim + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * dim + i] = s.sqrt();
            } else {
                l[i * dim + j] = s / l[j * dim + j];
            }
        }
    }
    // Columns of L⁻¹ by forward substitution, then A⁻¹ = L⁻ᵀ L⁻¹.
    let mut linv = vec![0.0; dim * dim];
    for c in 0..dim {
        for i in c..dim {
            let s: f64 =
                (if i == c { 1.0 } else { 0.0 }) - (c..i).map(|k| l[i * dim + k] * linv[k * dim + c]).sum::<f64>();
            linv[i * dim + c] = s / l[i * dim + i];
        }
    }
    let mut inv = vec![0.0; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            inv[i * dim + j] = (i.max(j)..dim).map(|k| linv[k * dim + i] * linv[k * dim + j]).sum();
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn gaussian_features_score_like_a_chi_distribution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let g = Normal::new(0.0, 1.0).unwrap();
        let dim = 4;
        // Correlated features: x = (z0, z0 + z1, 3 z2, z3 − z2) + offset.
        let rows: Vec<f32> = (0..20_000)
            .flat_map(|_| {
                let z: Vec<f64> = (0..4).map(|_| g.sample(&mut rng)).collect();
                [z[0] + 1.0, z[0] + z[1], 3.0 * z[2] - 2.0, z[3] - z[2]].map(|v| v as f32)
            })
            .collect();
        let m = OodModel::fit(&rows, dim).unwrap();
        // χ with 4 degrees of freedom: median 1.83, 99.5th percentile 3.86.
        assert!((m.median_train - 1.83).abs() < 0.05, "{}", m.median_train);
        assert!((m.threshold_995 - 3.86).abs() < 0.15, "{}", m.threshold_995);
        let fitted_mean: Vec<f32> = m.mean.iter().map(|&v| v as f32).collect();
        assert!(m.score(&fitted_mean) < 1e-3);
        assert!(m.score(&[1.0, 0.0, -2.0, 0.0]) < 0.1);
        // Far along the tight direction (z1 has σ 1 but x1 − x0 isolates it) scores high.
        assert!(m.score(&[1.0, 6.0, -2.0, 0.0]) > 5.5);
        assert!(OodModel::fit(&rows[..8], dim).is_none());
    }
}
