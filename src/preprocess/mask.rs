//! Bad-pixel masking: the first step, so later steps only ever look at `ivar`.

use crate::spectrum::Arm;

/// Sets `ivar = 0` wherever the survey's mask is non-zero, where flux or ivar is not finite, or
/// where ivar is negative; non-finite flux becomes 0 so sums stay finite.
pub fn mask_bad_pixels(arm: &mut Arm) {
    debug_assert!(arm.mask.is_empty() || arm.mask.len() == arm.len());
    let mask = std::mem::take(&mut arm.mask);
    for i in 0..arm.len() {
        let bad_mask = mask.get(i).is_some_and(|&m| m != 0);
        let f = arm.flux[i];
        let iv = arm.ivar[i];
        if bad_mask || !f.is_finite() || !iv.is_finite() || iv < 0.0 {
            arm.ivar[i] = 0.0;
        }
        if !f.is_finite() {
            arm.flux[i] = 0.0;
        }
    }
    arm.mask = mask;
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
    fn empty_mask_means_no_survey_mask() {
        let mut a = arm(vec![1.0, 2.0], vec![1.0, 1.0], vec![]);
        mask_bad_pixels(&mut a);
        assert_eq!(a.ivar, vec![1.0, 1.0]);
        assert!(all_flux_non_finite(&[f32::NAN, f32::NAN]));
        assert!(!all_flux_non_finite(&[f32::NAN, 1.0]));
    }
}
