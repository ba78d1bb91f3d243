//! Bad-pixel masking: the first step, so later steps only ever look at `ivar`.

use crate::spectrum::Arm;

/// A pixel whose flux departs from the arm's typical level by more than this many times that
/// level (median |flux| plus the robust spread) is not light a star can send: a corrupted value.
/// Real features stay far below it (emission lines and cosmic rays reach tens, not thousands).
pub const MAX_FLUX_EXCURSION: f32 = 1.0e3;
/// The highest per-pixel S/N against the arm's typical level a spectrograph can deliver
/// (≈ 10¹⁰ photons in one pixel); a pixel claiming more carries a corrupted ivar.
pub const MAX_PIXEL_SNR: f32 = 1.0e5;

/// Sets `ivar = 0` wherever the survey's mask is non-zero, where flux or ivar is not finite, where
/// ivar is negative, and where flux or ivar is physically impossible for this arm (see
/// [`MAX_FLUX_EXCURSION`], [`MAX_PIXEL_SNR`]); non-finite flux becomes 0 so sums stay finite.
///
/// Why the impossible values matter: one finite but absurd pixel (a flipped exponent,
/// −2·10³³) passes every finiteness check, then drags the continuum fit by 30 orders of magnitude
/// and overflows the normalised ivar to +inf.
pub fn mask_bad_pixels(arm: &mut Arm) {
    debug_assert!(arm.mask.is_empty() || arm.mask.len() == arm.len());
    let Arm { flux, ivar, mask, .. } = arm;
    // Branch-free per pixel, with or without a survey mask, so both loops vectorise.
    let clean = |f: &mut f32, iv: &mut f32, flagged: bool| {
        let finite = f.is_finite();
        let bad = flagged | !finite | !iv.is_finite() | (*iv < 0.0);
        *iv = if bad { 0.0 } else { *iv };
        *f = if finite { *f } else { 0.0 };
    };
    if mask.len() == flux.len() {
        for ((f, iv), &m) in flux.iter_mut().zip(ivar.iter_mut()).zip(mask.iter()) {
            clean(f, iv, m != 0);
        }
    } else {
        for (f, iv) in flux.iter_mut().zip(ivar.iter_mut()) {
            clean(f, iv, false);
        }
    }
    mask_impossible_values(arm);
}

/// Most pixels the arm's robust level is estimated from: the level only sets limits a thousand
/// times above it, so an evenly spread subsample is as good as every pixel, and much cheaper
/// (two selections over 256 values per arm rather than over thousands).
const LEVEL_SAMPLE: usize = 256;

/// Masks usable pixels whose flux or ivar no spectrograph could record, judged against the arm's
/// own robust level, so the rule holds in any flux unit.
fn mask_impossible_values(arm: &mut Arm) {
    // Every `stride`-th pixel, the usable ones: an even spread over the arm without first counting
    // the usable pixels. Usable pixels have finite flux (mask_bad_pixels zeroed the rest's ivar).
    let stride = arm.len().div_ceil(LEVEL_SAMPLE).max(1);
    let mut sample: Vec<f32> =
        arm.flux.iter().zip(&arm.ivar).step_by(stride).filter(|(_, iv)| **iv > 0.0).map(|(f, _)| *f).collect();
    if sample.is_empty() {
        // Usable pixels, if any, fall between the sampled ones: sample those instead.
        sample = arm.flux.iter().zip(&arm.ivar).filter(|(_, iv)| **iv > 0.0).map(|(f, _)| *f).collect();
        if sample.is_empty() {
            return;
        }
        let stride = sample.len().div_ceil(LEVEL_SAMPLE);
        sample = sample.into_iter().step_by(stride).collect();
    }
    let median = median_in_place(&mut sample);
    for v in sample.iter_mut() {
        *v = (*v - median).abs();
    }
    let spread = 1.4826 * median_in_place(&mut sample);
    let level = median.abs() + spread;
    if !(level.is_finite() && level > 0.0) {
        return; // a constant zero arm: nothing to judge against
    }
    let max_excursion = MAX_FLUX_EXCURSION * level;
    let max_ivar = (MAX_PIXEL_SNR / level).powi(2);
    for (f, iv) in arm.flux.iter().zip(arm.ivar.iter_mut()) {
        let impossible = (f - median).abs() > max_excursion || *iv > max_ivar;
        *iv = if impossible { 0.0 } else { *iv };
    }
}

fn median_in_place(v: &mut [f32]) -> f32 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// True when the arm holds no flux value that is finite, i.e. the file's flux is NaN throughout.
pub fn all_flux_non_finite(flux: &[f32]) -> bool {
    !flux.is_empty() && flux.iter().all(|f| !f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(flux: Vec<f32>, ivar: Vec<f32>, mask: Vec<u32>) -> Arm {
        let n = flux.len();
        Arm {
            name: "x".into(),
            wavelength: (0..n).map(|i| 4000.0 + i as f64).collect(),
            flux,
            ivar,
            mask,
            lsf_fwhm_angstrom: None,
        }
    }

    #[test]
    fn masks_flagged_nonfinite_and_negative_pixels() {
        let mut a =
            arm(vec![1.0, f32::NAN, 3.0, 4.0, 5.0], vec![1.0, 1.0, f32::INFINITY, -2.0, 1.0], vec![0, 0, 0, 0, 4]);
        mask_bad_pixels(&mut a);
        assert_eq!(a.ivar, vec![1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(a.flux[1], 0.0);
        assert!(a.flux.iter().all(|f| f.is_finite()));
    }

    #[test]
    fn masks_physically_impossible_flux_and_ivar_in_any_unit() {
        for unit in [1e-3f32, 1.0, 1e4] {
            let n = 500;
            let mut flux: Vec<f32> = (0..n).map(|i| unit * (100.0 + (i % 7) as f32)).collect();
            let mut ivar = vec![1.0 / (unit * unit); n];
            flux[10] = -2.06e33; // a flipped exponent, as the fuzzer found
            flux[20] = unit * 5_000.0; // a strong emission line or cosmic ray: kept
            flux[30] = unit * 1.0e6; // ten thousand times the level: not light
            ivar[40] = 1.0e30 / (unit * unit); // S/N 10^15: not a measurement
            let mut a = arm(flux, ivar, vec![]);
            mask_bad_pixels(&mut a);
            let masked: Vec<usize> = (0..n).filter(|&i| a.ivar[i] == 0.0).collect();
            assert_eq!(masked, vec![10, 30, 40], "unit {unit}");
        }
    }

    #[test]
    fn an_arm_usable_only_between_the_sampled_pixels_is_still_judged() {
        // 3,000 pixels, usable only at odd indices: the even-strided sample finds none of them.
        let n = 3000;
        let flux: Vec<f32> = (0..n).map(|i| if i == 1001 { 1.0e9 } else { 10.0 + (i % 5) as f32 }).collect();
        let ivar: Vec<f32> = (0..n).map(|i| if i % 2 == 1 { 1.0 } else { 0.0 }).collect();
        let mut a = arm(flux, ivar, vec![]);
        mask_bad_pixels(&mut a);
        assert_eq!(a.ivar[1001], 0.0, "an impossible flux among sparse usable pixels is masked");
        assert_eq!(a.ivar.iter().filter(|v| **v > 0.0).count(), n / 2 - 1);
    }

    #[test]
    fn a_noise_dominated_arm_keeps_its_noise() {
        // Sky-subtracted flux around zero: the spread, not the median, sets the level.
        let flux: Vec<f32> = (0..200).map(|i| if i % 2 == 0 { 0.5 } else { -0.5 } * (1 + i % 3) as f32).collect();
        let mut a = arm(flux, vec![4.0; 200], vec![]);
        mask_bad_pixels(&mut a);
        assert!(a.ivar.iter().all(|&v| v == 4.0));
    }

    #[test]
    fn empty_mask_means_no_survey_mask() {
        let mut a = arm(vec![1.0, 2.0], vec![1.0, 1.0], vec![]);
        mask_bad_pixels(&mut a);
        assert_eq!(a.ivar, vec![1.0, 1.0]);
        assert!(all_flux_non_finite(&[f32::NAN, f32::NAN]));
        assert!(!all_flux_non_finite(&[f32::NAN, 1.0]));
    }
}
