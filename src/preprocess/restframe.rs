//! Doppler correction to the rest frame.

use crate::spectrum::Arm;

/// Speed of light, km/s.
pub const C_KMS: f64 = 299_792.458;

/// Divides the wavelengths by (1 + z), with z the survey's redshift (v/c for stars).
/// Flux density is left as is: the continuum normalisation removes the (1 + z) scale.
pub fn shift_to_rest_frame(arm: &mut Arm, z: f64) {
    let scale = 1.0 / (1.0 + z);
    arm.wavelength = arm.wavelength.iter().map(|w| w * scale).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_observed_redshifted_lands_at_its_rest_wavelength() {
        let z = 150.0 / C_KMS;
        let mut a = Arm {
            name: "b".into(),
            wavelength: vec![6562.8 * (1.0 + z)].into(),
            flux: vec![1.0],
            ivar: vec![1.0],
            mask: vec![],
            lsf_fwhm_angstrom: None,
        };
        shift_to_rest_frame(&mut a, z);
        assert!((a.wavelength[0] - 6562.8).abs() < 1e-9);
    }
}
