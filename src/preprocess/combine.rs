//! Inverse-variance combination of arms that were resampled onto the same grid.

use crate::spectrum::GridSpectrum;

/// Per pixel: flux = Σ ivarₐ·fluxₐ / Σ ivarₐ, ivar = Σ ivarₐ. Outside the overlaps only one arm has
/// ivar > 0, so its values pass through unchanged.
pub fn combine_arms(arms: &[GridSpectrum]) -> GridSpectrum {
    let npix = arms.first().map_or(0, |a| a.flux.len());
    // Arm by arm over whole arrays (the same per-pixel order of terms, so the same sums), with
    // unusable pixels adding exact zeros rather than branching: the loops vectorise.
    let (mut sw, mut swf) = (vec![0.0f64; npix], vec![0.0f64; npix]);
    for a in arms {
        for (((w, wf), &iv), &f) in sw.iter_mut().zip(swf.iter_mut()).zip(&a.ivar).zip(&a.flux) {
            let usable = iv > 0.0;
            let (iv, f) = if usable { (iv as f64, f as f64) } else { (0.0, 0.0) };
            *w += iv;
            *wf += iv * f;
        }
    }
    let mut out = GridSpectrum::masked(npix);
    for (((flux, ivar), &w), &wf) in out.flux.iter_mut().zip(out.ivar.iter_mut()).zip(&sw).zip(&swf) {
        if w > 0.0 {
            *flux = (wf / w) as f32;
            *ivar = w as f32;
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
