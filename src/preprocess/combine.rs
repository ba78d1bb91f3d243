//! Inverse-variance combination of arms that were resampled onto the same grid.

use crate::spectrum::GridSpectrum;

/// Per pixel: flux = Σ ivarₐ·fluxₐ / Σ ivarₐ, ivar = Σ ivarₐ. Outside the overlaps only one arm has
/// ivar > 0, so its values pass through unchanged.
pub fn combine_arms(arms: &[GridSpectrum]) -> GridSpectrum {
    let npix = arms.first().map_or(0, |a| a.flux.len());
    let mut out = GridSpectrum::masked(npix);
    for j in 0..npix {
        let (mut sw, mut swf) = (0.0f64, 0.0f64);
        for a in arms {
            let iv = a.ivar[j] as f64;
            if iv > 0.0 {
                sw += iv;
                swf += iv * a.flux[j] as f64;
            }
        }
        if sw > 0.0 {
            out.flux[j] = (swf / sw) as f32;
            out.ivar[j] = sw as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_inverse_variance_weighted_and_single_arm_passes_through() {
        let b = GridSpectrum { flux: vec![1.0, 2.0, 0.0], ivar: vec![1.0, 3.0, 0.0] };
        let r = GridSpectrum { flux: vec![0.0, 4.0, 5.0], ivar: vec![0.0, 1.0, 2.0] };
        let c = combine_arms(&[b, r]);
        assert_eq!(c.flux, vec![1.0, 2.5, 5.0]);
        assert_eq!(c.ivar, vec![1.0, 4.0, 2.0]);
    }
}
