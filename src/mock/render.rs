//! From emulated flux to what an instrument records: Doppler shift, line-spread function,
//! sampling, flux-calibration error, noise. Reuses the ingest preprocessing kernels
//! (Gaussian degradation, flux-conserving resampling), so mocks and ingest share one definition.

use super::emulator::Emulator;
use super::labels::StarLabels;
use super::red_extension::extend_to_red;
use crate::preprocess::{C_KMS, degrade_resolution, resample};
use crate::spectrum::Arm;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// FWHM of MILES spectra, Å (constant over the range).
pub const MILES_FWHM_ANGSTROM: f64 = 2.5;

/// The emulated star, Doppler-shifted, at MILES resolution, on vacuum wavelengths.
pub fn observed_frame_spectrum(star: &StarLabels, rv_kms: f64) -> Arm {
    let e = Emulator::builtin();
    let (wave, flux) =
        extend_to_red(e.wave_vacuum(), &e.spectrum(star.teff, star.logg, star.feh), star.teff, star.logg, star.feh);
    let doppler = 1.0 + rv_kms / C_KMS;
    let n = wave.len();
    Arm {
        name: "model".into(),
        wavelength: wave.into_iter().map(|w| w * doppler).collect(),
        flux,
        ivar: vec![1.0; n],
        mask: vec![],
        lsf_fwhm_angstrom: Some(MILES_FWHM_ANGSTROM),
    }
}

/// Convolves to resolving power `r` (where the instrument is coarser than MILES) and integrates
/// onto the pixels bounded by `edges`. Pixels the model does not cover come back as 0.
pub fn instrument_sample(model: &Arm, r: f64, edges: &[f64]) -> Vec<f32> {
    let mut arm = model.clone();
    degrade_resolution(&mut arm, r);
    resample(&arm, edges, 0.5).flux
}

/// A smooth multiplicative error: 1 + a cubic in scaled wavelength with coefficients of ±`amplitude`.
pub fn calibration_error(rng: &mut impl Rng, wave: &[f64], amplitude: f64) -> Vec<f64> {
    let c: Vec<f64> = (0..4).map(|_| amplitude * (2.0 * rng.random::<f64>() - 1.0)).collect();
    let (lo, hi) = (wave[0], wave[wave.len() - 1]);
    wave.iter()
        .map(|w| {
            let x = 2.0 * (w - lo) / (hi - lo) - 1.0;
            1.0 + c[0] * x
                + c[1] * (2.0 * x * x - 1.0)
                + c[2] * (4.0 * x * x * x - 3.0 * x)
                + c[3] * 0.5 * (x * x - 0.3)
        })
        .collect()
}

/// Adds Gaussian noise for a per-pixel S/N; returns (noisy flux, ivar). Pixels with no flux model
/// (0) get ivar 0.
pub fn add_noise(rng: &mut impl Rng, flux: &[f32], snr: &[f64], floor: f64) -> (Vec<f32>, Vec<f32>) {
    let mut out = Vec::with_capacity(flux.len());
    let mut ivar = Vec::with_capacity(flux.len());
    for (f, s) in flux.iter().zip(snr) {
        if *f <= 0.0 || *s <= 0.0 {
            out.push(0.0);
            ivar.push(0.0);
            continue;
        }
        let sigma = (*f as f64 / s).max(floor);
        let z: f64 = StandardNormal.sample(rng);
        out.push((*f as f64 + sigma * z) as f32);
        ivar.push((1.0 / (sigma * sigma)) as f32);
    }
    (out, ivar)
}

/// Median S/N (flux·√ivar) of the pixels within [lo, hi] Å.
pub fn band_snr(wave: &[f64], flux: &[f32], ivar: &[f32], lo: f64, hi: f64) -> f64 {
    let mut v: Vec<f64> = wave
        .iter()
        .zip(flux.iter().zip(ivar))
        .filter(|(w, (_, iv))| **w >= lo && **w <= hi && **iv > 0.0)
        .map(|(_, (f, iv))| *f as f64 * (*iv as f64).sqrt())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}
