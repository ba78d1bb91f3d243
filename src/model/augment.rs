//! Training-time augmentation of pixel inputs (`train --augment`, `finetune --augment`): what
//! separates a real spectrum from an emulated one of the same star, drawn afresh for every
//! spectrum of every batch, so the network cannot lean on details real spectra do not share.
//!
//! On the normalised flux f = feature + 1 of each spectrum: a radial-velocity residual (a shift of
//! up to `shift_px` pixels), resolution jitter (Gaussian smoothing of up to `smooth_px` pixels), a
//! smooth multiplicative continuum/calibration distortion (1 + Legendre terms 1–3 of up to
//! `continuum` each), re-drawn noise (Gaussian, σ up to `noise` per pixel) and, with probability
//! `mask_prob`, one masked segment of up to 5 % of the window. Masked pixels (feature 0) stay
//! masked. The draws come from one ChaCha stream seeded by the fit's seed and consumed in batch
//! order, so a seed reproduces the weights bit for bit.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Largest added per-pixel noise σ (normalised flux units); each spectrum draws σ in [0, noise].
    pub noise: f64,
    /// Largest coefficient of each Legendre term (1–3) of the multiplicative distortion.
    pub continuum: f64,
    /// Largest radial-velocity residual, in pixels (LAMOST log pixels: 69 km/s each).
    pub shift_px: f64,
    /// Largest extra Gaussian smoothing σ, in pixels.
    pub smooth_px: f64,
    /// Probability that a spectrum gets one masked segment.
    pub mask_prob: f64,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self { noise: 0.02, continuum: 0.02, shift_px: 0.5, smooth_px: 0.7, mask_prob: 0.2 }
    }
}

impl Augmentation {
    /// Augments one spectrum's features in place.
    pub fn apply(&self, x: &mut [f32], rng: &mut impl Rng) {
        let n = x.len();
        if n < 8 {
            return;
        }
        let masked: Vec<bool> = x.iter().map(|v| *v == 0.0).collect();
        let mut f: Vec<f64> = x.iter().map(|v| *v as f64 + 1.0).collect();
        // Shift: linear interpolation at i − s (masked neighbours count as the pixel itself).
        let shift = self.shift_px * (2.0 * rng.random::<f64>() - 1.0);
        if shift != 0.0 {
            let src = f.clone();
            for (i, v) in f.iter_mut().enumerate() {
                let p = (i as f64 - shift).clamp(0.0, (n - 1) as f64);
                let (k, t) = (p.floor() as usize, p.fract());
                let (a, b) = (src[k], src[(k + 1).min(n - 1)]);
                *v = a + t * (b - a);
            }
        }
        // Resolution jitter: a normalised Gaussian kernel of σ in [0, smooth_px].
        let sigma = self.smooth_px * rng.random::<f64>();
        if sigma > 0.05 {
            let half = (3.0 * sigma).ceil() as isize;
            let kernel: Vec<f64> = (-half..=half).map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp()).collect();
            let src = f.clone();
            for (i, v) in f.iter_mut().enumerate() {
                let (mut acc, mut wsum) = (0.0, 0.0);
                for (j, w) in kernel.iter().enumerate() {
                    let k = i as isize + j as isize - half;
                    if k >= 0 && (k as usize) < n && !masked[k as usize] {
                        acc += w * src[k as usize];
                        wsum += w;
                    }
                }
                if wsum > 0.0 {
                    *v = acc / wsum;
                }
            }
        }
        // Continuum distortion and noise.
        let c: [f64; 3] = [0, 1, 2].map(|_| self.continuum * (2.0 * rng.random::<f64>() - 1.0));
        let noise = self.noise * rng.random::<f64>();
        for (i, v) in f.iter_mut().enumerate() {
            let t = 2.0 * i as f64 / (n - 1) as f64 - 1.0;
            let distortion =
                1.0 + c[0] * t + c[1] * 0.5 * (3.0 * t * t - 1.0) + c[2] * 0.5 * (5.0 * t.powi(3) - 3.0 * t);
            let z: f64 = StandardNormal.sample(rng);
            *v = *v * distortion + noise * z;
        }
        // One masked segment.
        let mut segment = 0..0;
        if rng.random::<f64>() < self.mask_prob {
            let len = 1 + rng.random_range(0..(n / 20).max(1));
            let start = rng.random_range(0..n - len);
            segment = start..start + len;
        }
        for (i, (o, v)) in x.iter_mut().zip(&f).enumerate() {
            *o = if masked[i] || segment.contains(&i) { 0.0 } else { ((v - 1.0) as f32).clamp(-1.0, 1.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spectrum(n: usize) -> Vec<f32> {
        // Absorption lines on a flat continuum, a few masked pixels.
        (0..n)
            .map(|i| if i % 97 == 5 { 0.0 } else { -0.4 * (-(((i % 40) as f32 - 20.0) / 2.0).powi(2)).exp() })
            .collect()
    }

    #[test]
    fn a_seed_reproduces_the_draws_and_the_spectrum_stays_itself() {
        let a = Augmentation::default();
        let x0 = spectrum(1462);
        let run = |seed: u64| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut x = x0.clone();
            a.apply(&mut x, &mut rng);
            x
        };
        assert_eq!(run(4), run(4));
        assert_ne!(run(4), run(5));
        let x = run(4);
        // Masked pixels stay masked, values stay in range, and the augmented spectrum is close to
        // the original (a few per cent), not another star.
        for (i, (o, v)) in x0.iter().zip(&x).enumerate() {
            if *o == 0.0 && i % 97 == 5 {
                assert_eq!(*v, 0.0, "pixel {i}");
            }
            assert!((-1.0..=1.0).contains(v));
        }
        let rms = (x0
            .iter()
            .zip(&x)
            .filter(|(a, b)| **a != 0.0 && **b != 0.0)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / x0.len() as f64)
            .sqrt();
        assert!(rms > 0.001 && rms < 0.08, "rms change {rms}");
        // With every knob at zero nothing changes.
        let none = Augmentation { noise: 0.0, continuum: 0.0, shift_px: 0.0, smooth_px: 0.0, mask_prob: 0.0 };
        let mut y = x0.clone();
        none.apply(&mut y, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        for (a, b) in x0.iter().zip(&y) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
