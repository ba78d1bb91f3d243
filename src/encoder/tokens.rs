//! SpecCLIP-style tokens of a spectrum (SpecCLIP, as arXiv 2602.15021 uses it).
//!
//! The model input of a pixel (`shards::read::pixel_features`) is standardised per spectrum (z-score
//! over the window), cut into windows of `patch` pixels every `stride` pixels, and one more token
//! carries log10 of the spectrum's scale. Every token has `patch + 1` values: a window is its `patch`
//! values and a 0, the scale token is `patch` zeros and log10(σ). Unlike SpecCLIP, which drops the
//! pixels past the last full window, the last window is zero-padded (z = 0 is the spectrum's mean),
//! so no pixel is lost.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLayout {
    pub npix: usize,
    pub patch: usize,
    pub stride: usize,
}

impl TokenLayout {
    pub fn specclip(npix: usize) -> Self {
        Self { npix, patch: 20, stride: 10 }
    }

    /// Windows needed to cover every pixel.
    pub fn n_windows(&self) -> usize {
        if self.npix <= self.patch { 1 } else { (self.npix - self.patch).div_ceil(self.stride) + 1 }
    }

    /// Windows plus the scale token.
    pub fn n_tokens(&self) -> usize {
        self.n_windows() + 1
    }

    /// Values per token.
    pub fn token_dim(&self) -> usize {
        self.patch + 1
    }

    /// Writes the tokens of one spectrum (n_tokens × token_dim, row-major) into `out`.
    pub fn tokenize(&self, features: &[f32], out: &mut [f32]) {
        let n = features.len().max(1) as f64;
        let mean = features.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = features.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt().max(1e-6);
        let dim = self.token_dim();
        out.fill(0.0);
        for w in 0..self.n_windows() {
            let start = w * self.stride;
            for k in 0..self.patch {
                if let Some(&v) = features.get(start + k) {
                    out[w * dim + k] = ((v as f64 - mean) / std) as f32;
                }
            }
        }
        out[self.n_windows() * dim + self.patch] = std.log10() as f32;
    }
}

/// Tokens of a block of spectra: [rows, n_tokens, token_dim].
pub fn tokens_tensor(
    layout: &TokenLayout,
    features: &[f32],
    rows: &[usize],
    dev: &candle_core::Device,
) -> super::Result<candle_core::Tensor> {
    let (n, t, k) = (layout.npix, layout.n_tokens(), layout.token_dim());
    let mut buf = vec![0f32; rows.len() * t * k];
    for (j, &r) in rows.iter().enumerate() {
        layout.tokenize(&features[r * n..(r + 1) * n], &mut buf[j * t * k..(j + 1) * t * k]);
    }
    Ok(candle_core::Tensor::from_vec(buf, (rows.len(), t, k), dev)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_a_hand_computed_case() {
        // 45 px, windows of 20 every 10: starts 0, 10, 20 (20..40) and 30 (30..50, padded by 5).
        let l = TokenLayout { npix: 45, patch: 20, stride: 10 };
        assert_eq!(l.n_windows(), 4);
        assert_eq!(l.n_tokens(), 5);
        assert_eq!(l.token_dim(), 21);
        // Exactly divisible: 40 px → starts 0, 10, 20.
        assert_eq!(TokenLayout { npix: 40, patch: 20, stride: 10 }.n_windows(), 3);
        // SpecCLIP's window: 1462 px → 145 full windows + 1 padded + the scale token.
        assert_eq!(TokenLayout::specclip(1462).n_tokens(), 147);

        let f: Vec<f32> = (0..45).map(|i| i as f32).collect();
        let mut t = vec![0f32; l.n_tokens() * 21];
        l.tokenize(&f, &mut t);
        let (mean, std) = (22.0f64, ((0..45).map(|i| (i as f64 - 22.0).powi(2)).sum::<f64>() / 45.0).sqrt());
        let z = |i: usize| ((i as f64 - mean) / std) as f32;
        // Overlap: window 1 starts with pixel 10, which is also value 10 of window 0.
        assert_eq!(t[21], z(10));
        assert_eq!(t[10], z(10));
        // Each window's extra value is 0; the last window is padded with zeros past pixel 44.
        assert_eq!(t[20], 0.0);
        assert_eq!(t[3 * 21 + 14], z(44));
        assert!(t[3 * 21 + 15..3 * 21 + 21].iter().all(|&v| v == 0.0));
        // The scale token: zeros, then log10 σ.
        assert!(t[4 * 21..4 * 21 + 20].iter().all(|&v| v == 0.0));
        assert!((t[4 * 21 + 20] as f64 - std.log10()).abs() < 1e-6);
    }
}
