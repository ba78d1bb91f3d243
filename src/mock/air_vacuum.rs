//! Air ↔ vacuum wavelengths (Ciddor 1996 / IAU convention, as in astropy and the DESI data model): MILES is in air, the surveys in vacuum.

/// Refractive index of air for a vacuum wavelength (Morton 2000 / Birch & Downs, as in VALD).
fn refractive_index_vacuum(lambda_vac: f64) -> f64 {
    let s2 = (1e4 / lambda_vac).powi(2);
    1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
}

pub fn vacuum_to_air(lambda_vac: f64) -> f64 {
    lambda_vac / refractive_index_vacuum(lambda_vac)
}

/// Inverse of [`vacuum_to_air`] by fixed-point iteration (two steps agree with ten to 1e-9 Å).
pub fn air_to_vacuum(lambda_air: f64) -> f64 {
    let mut vac = lambda_air;
    for _ in 0..3 {
        vac = lambda_air * refractive_index_vacuum(vac);
    }
    vac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_match_the_documented_sizes_and_invert() {
        // +1.01 Å at 3540 Å, +1.39 Å at 5000 Å, +2.69 Å at 9824 Å.
        for (air, shift) in [(3540.0, 1.01), (5000.0, 1.39), (9824.0, 2.69)] {
            let vac = air_to_vacuum(air);
            assert!((vac - air - shift).abs() < 0.01, "{air}: {}", vac - air);
            assert!((vacuum_to_air(vac) - air).abs() < 1e-8);
        }
    }
}
