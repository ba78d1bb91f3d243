//! The common output wavelength grid: LAMOST's native log-linear sampling, optionally windowed.
//!
//! Every spectrum starpipe writes lives on one grid, λ_i = 10^(log10_lambda0 + dlog10_lambda·(start + i))
//! in vacuum Ångström, rest frame. Keeping the LAMOST pixel zero as the origin for every window means
//! pixel `k` of the native grid is the same wavelength in every shard, whatever the window.

use serde::{Deserialize, Serialize};

/// log10 λ of LAMOST LRS pixel 0 (`COEFF0`), vacuum Å.
pub const LAMOST_LOG10_LAMBDA0: f64 = 3.5682;
/// log10 λ step of LAMOST LRS (`COEFF1`); one pixel is c·ln10·1e-4 ≈ 69 km/s.
pub const LAMOST_DLOG10_LAMBDA: f64 = 1.0e-4;
/// Pixels of the longest LAMOST LRS spectrum seen (3909, ending at 9099 Å).
pub const LAMOST_NATIVE_NPIX: usize = 3909;

/// A window of the log-linear grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogGrid {
    /// log10 of the wavelength (vacuum Å) of native pixel 0.
    pub log10_lambda0: f64,
    /// Step in log10 λ per pixel.
    pub dlog10_lambda: f64,
    /// Index of this window's first pixel on the native grid.
    pub start: usize,
    /// Number of pixels in the window.
    pub npix: usize,
}

/// Named windows users ask for by `--grid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GridPreset {
    /// LAMOST native: pixels 0‥3908, 3700–9099 Å.
    Lamost,
    /// SpecCLIP's window: pixels 338‥1799 (1462 px), 3999.4–5598.9 Å.
    Specclip,
}

impl LogGrid {
    pub fn preset(preset: GridPreset) -> Self {
        match preset {
            GridPreset::Lamost => Self::lamost_window(0, LAMOST_NATIVE_NPIX),
            GridPreset::Specclip => Self::lamost_window(338, 1799 - 338 + 1),
        }
    }

    pub fn lamost_window(start: usize, npix: usize) -> Self {
        Self { log10_lambda0: LAMOST_LOG10_LAMBDA0, dlog10_lambda: LAMOST_DLOG10_LAMBDA, start, npix }
    }

    /// The native-grid pixels whose centres lie within [lo, hi] Å.
    pub fn lamost_between(lo_angstrom: f64, hi_angstrom: f64) -> Option<Self> {
        let first = ((lo_angstrom.log10() - LAMOST_LOG10_LAMBDA0) / LAMOST_DLOG10_LAMBDA - 1e-9).ceil();
        let last = ((hi_angstrom.log10() - LAMOST_LOG10_LAMBDA0) / LAMOST_DLOG10_LAMBDA + 1e-9).floor();
        (first >= 0.0 && last >= first).then(|| Self::lamost_window(first as usize, (last - first) as usize + 1))
    }

    fn log10_at(&self, i: f64) -> f64 {
        self.log10_lambda0 + self.dlog10_lambda * (self.start as f64 + i)
    }

    /// Centre of pixel `i` (0-based within the window), vacuum Å.
    pub fn wavelength(&self, i: usize) -> f64 {
        10f64.powf(self.log10_at(i as f64))
    }

    pub fn wavelengths(&self) -> Vec<f64> {
        (0..self.npix).map(|i| self.wavelength(i)).collect()
    }

    /// The npix+1 pixel boundaries, halfway between centres in log λ.
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.npix).map(|i| 10f64.powf(self.log10_at(i as f64 - 0.5))).collect()
    }

    pub fn first_angstrom(&self) -> f64 {
        self.wavelength(0)
    }

    pub fn last_angstrom(&self) -> f64 {
        self.wavelength(self.npix - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamost_pixel_zero_is_3699_985_angstrom() {
        let g = LogGrid::preset(GridPreset::Lamost);
        assert!((g.wavelength(0) - 3699.985).abs() < 1e-3, "{}", g.wavelength(0));
        assert!((g.last_angstrom() - 9099.13).abs() < 0.01, "{}", g.last_angstrom());
    }

    #[test]
    fn specclip_window_is_native_pixels_338_to_1799() {
        let g = LogGrid::preset(GridPreset::Specclip);
        assert_eq!((g.start, g.npix), (338, 1462));
        assert!((g.first_angstrom() - 3999.4).abs() < 0.1);
        assert!((g.last_angstrom() - 5598.9).abs() < 0.1);
        assert_eq!(LogGrid::lamost_between(3999.0, 5599.0), Some(g));
    }

    #[test]
    fn edges_bracket_centres() {
        let g = LogGrid::lamost_window(10, 5);
        let (e, w) = (g.edges(), g.wavelengths());
        for i in 0..5 {
            assert!(e[i] < w[i] && w[i] < e[i + 1]);
        }
    }
}
