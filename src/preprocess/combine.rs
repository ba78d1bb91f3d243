//! Inverse-variance combination of arms that were resampled onto the same grid.

use super::resample::sweep_to_rest_frame;
use crate::spectrum::{Arm, GridSpectrum};

/// Running inverse-variance sums per grid pixel, arm after arm: Σ ivarₐ and Σ ivarₐ·fluxₐ.
struct InverseVarianceSums {
    sw: Vec<f64>,
    swf: Vec<f64>,
}

impl InverseVarianceSums {
    fn new(npix: usize) -> Self {
        Self { sw: vec![0.0; npix], swf: vec![0.0; npix] }
    }

    /// One arm's pixel `j`; unusable pixels (ivar ≤ 0, flux maybe NaN) add nothing.
    fn add(&mut self, j: usize, flux: f32, ivar: f32) {
        if ivar > 0.0 {
            self.sw[j] += ivar as f64;
            self.swf[j] += ivar as f64 * flux as f64;
        }
    }

    /// flux = Σ ivarₐ·fluxₐ / Σ ivarₐ, ivar = Σ ivarₐ; masked where no arm was usable.
    fn finish(self) -> GridSpectrum {
        let mut out = GridSpectrum::masked(self.sw.len());
        for (((flux, ivar), &w), &wf) in out.flux.iter_mut().zip(out.ivar.iter_mut()).zip(&self.sw).zip(&self.swf) {
            if w > 0.0 {
                *flux = (wf / w) as f32;
                *ivar = w as f32;
            }
        }
        out
    }
}

/// Per pixel: flux = Σ ivarₐ·fluxₐ / Σ ivarₐ, ivar = Σ ivarₐ. Outside the overlaps only one arm has
/// ivar > 0, so its values pass through unchanged.
pub fn combine_arms(arms: &[GridSpectrum]) -> GridSpectrum {
    let mut sums = InverseVarianceSums::new(arms.first().map_or(0, |a| a.flux.len()));
    for a in arms {
        for (j, (&f, &iv)) in a.flux.iter().zip(&a.ivar).enumerate() {
            sums.add(j, f, iv);
        }
    }
    sums.finish()
}

/// Resamples every arm to the rest frame and combines them as [`combine_arms`] does, without a grid
/// spectrum per arm: each arm's resampled pixels (rounded to f32, as a grid spectrum would hold
/// them) go straight into the inverse-variance sums, so the result is the same, bit for bit.
pub fn resample_and_combine(arms: &[Arm], grid_edges: &[f64], z: f64, min_coverage: f64) -> GridSpectrum {
    let mut sums = InverseVarianceSums::new(grid_edges.len().saturating_sub(1));
    for arm in arms {
        sweep_to_rest_frame(arm, grid_edges, z, min_coverage, |j, flux, ivar| sums.add(j, flux, ivar));
    }
    sums.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_into_the_sums_equals_combining_grid_spectra_bit_for_bit() {
        use crate::grid::{GridPreset, LogGrid};
        use crate::preprocess::resample_to_rest_frame;
        let grid = LogGrid::preset(GridPreset::Lamost);
        let edges = grid.edges();
        // DESI-like b, r, z arms overlapping at the dichroics, with masked runs and a NaN under a mask.
        let arm = |start: f64, n: usize, seed: usize| {
            let wavelength: Vec<f64> = (0..n).map(|i| start + 0.8 * i as f64).collect();
            let flux: Vec<f32> = (0..n).map(|i| (3.0 + ((i * 37 + seed) % 17) as f64 / 7.0) as f32).collect();
            let mut ivar: Vec<f32> = (0..n).map(|i| 1.0 + ((i * 13 + seed) % 5) as f32).collect();
            ivar[100..140].fill(0.0);
            let mut flux = flux;
            flux[120] = f32::NAN;
            Arm { name: "x".into(), wavelength: wavelength.into(), flux, ivar, mask: vec![], lsf_fwhm_angstrom: None }
        };
        let arms = [arm(3600.0, 2751, 1), arm(5760.0, 2326, 2), arm(7520.0, 2881, 3)];
        for z in [0.0, 4e-4, -2e-4] {
            let per_arm: Vec<GridSpectrum> = arms.iter().map(|a| resample_to_rest_frame(a, &edges, z, 0.5)).collect();
            let reference = combine_arms(&per_arm);
            let fused = resample_and_combine(&arms, &edges, z, 0.5);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused.flux), bits(&reference.flux), "z {z}");
            assert_eq!(bits(&fused.ivar), bits(&reference.ivar), "z {z}");
            assert!(reference.ivar.iter().filter(|v| **v > 0.0).count() > grid.npix * 9 / 10);
            // One arm alone: the same as resampling it.
            let single = resample_and_combine(&arms[..1], &edges, z, 0.5);
            assert_eq!(bits(&single.flux), bits(&per_arm[0].flux));
            assert_eq!(bits(&single.ivar), bits(&per_arm[0].ivar));
        }
    }

    #[test]
    fn overlap_is_inverse_variance_weighted_and_single_arm_passes_through() {
        let b = GridSpectrum { flux: vec![1.0, 2.0, 0.0], ivar: vec![1.0, 3.0, 0.0] };
        let r = GridSpectrum { flux: vec![0.0, 4.0, 5.0], ivar: vec![0.0, 1.0, 2.0] };
        let c = combine_arms(&[b, r]);
        assert_eq!(c.flux, vec![1.0, 2.5, 5.0]);
        assert_eq!(c.ivar, vec![1.0, 4.0, 2.0]);
    }
}
