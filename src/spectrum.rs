//! Spectra as they move between stages: native arms in, one grid out.

use std::sync::Arc;

/// One contiguous piece of an observed spectrum in its native sampling (a DESI arm, or all of a
/// LAMOST spectrum). Invariant after [`crate::preprocess::mask_bad_pixels`]: every flux value is
/// finite and every bad pixel has `ivar == 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Arm name as the survey writes it: "b", "r", "z", or "lrs" for LAMOST.
    pub name: String,
    /// Pixel centres, vacuum Å, increasing, in the observed frame. Shared, not copied, between
    /// the spectra of one file (every row of a DESI coadd's arm has the same wavelengths); the rest
    /// frame is applied when resampling.
    pub wavelength: Arc<[f64]>,
    /// Flux density in the survey's units.
    pub flux: Vec<f32>,
    /// Inverse variance of `flux`; 0 marks a pixel not to use.
    pub ivar: Vec<f32>,
    /// The survey's pixel mask (0 = good), or empty when the survey gives none.
    pub mask: Vec<u32>,
    /// Instrumental line-spread FWHM in Å, where known (used to degrade resolution).
    pub lsf_fwhm_angstrom: Option<f64>,
}

impl Arm {
    pub fn len(&self) -> usize {
        self.wavelength.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wavelength.is_empty()
    }

    /// Fraction of pixels with `ivar > 0`.
    pub fn good_fraction(&self) -> f64 {
        if self.ivar.is_empty() {
            return 0.0;
        }
        self.ivar.iter().filter(|&&v| v > 0.0).count() as f64 / self.ivar.len() as f64
    }
}

/// A spectrum on the output grid (see [`crate::grid::LogGrid`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GridSpectrum {
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
}

impl GridSpectrum {
    pub fn masked(npix: usize) -> Self {
        Self { flux: vec![0.0; npix], ivar: vec![0.0; npix] }
    }

    /// Fraction of grid pixels with no usable data (`ivar == 0`).
    pub fn masked_fraction(&self) -> f32 {
        let bad = self.ivar.iter().filter(|&&v| v <= 0.0).count();
        bad as f32 / self.ivar.len().max(1) as f32
    }

    /// Median per-pixel S/N (flux·√ivar) over usable pixels; 0 when none are usable.
    pub fn median_snr(&self) -> f32 {
        let mut snr: Vec<f32> =
            self.flux.iter().zip(&self.ivar).filter(|(_, iv)| **iv > 0.0).map(|(f, iv)| f * iv.sqrt()).collect();
        if snr.is_empty() {
            return 0.0;
        }
        let mid = snr.len() / 2;
        let (_, m, _) = snr.select_nth_unstable_by(mid, f32::total_cmp);
        *m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_snr_is_the_middle_usable_pixel() {
        // Pseudo-random fluxes of both signs and a few masked pixels.
        let n = 1001;
        let flux: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1013) as f32 - 300.0) * 0.37).collect();
        let ivar: Vec<f32> = (0..n).map(|i| if i % 17 == 0 { 0.0 } else { 0.25 + (i % 5) as f32 }).collect();
        let mut snr: Vec<f32> =
            flux.iter().zip(&ivar).filter(|(_, iv)| **iv > 0.0).map(|(f, iv)| f * iv.sqrt()).collect();
        snr.sort_by(f32::total_cmp);
        let spec = GridSpectrum { flux, ivar };
        assert_eq!(spec.median_snr().to_bits(), snr[snr.len() / 2].to_bits());
        assert_eq!(GridSpectrum::masked(10).median_snr(), 0.0);
    }
}
