//! From emulated flux to what an instrument records: Doppler shift, line-spread function,
//! sampling, flux-calibration error, noise. Reuses the ingest preprocessing kernels
//! (Gaussian degradation, flux-conserving resampling), so mocks and ingest share one definition.

use super::emulator::Emulator;
use super::labels::StarLabels;
use super::red_extension::extend_to_red_until;
use crate::preprocess::{C_KMS, pixel_edges};
use crate::spectrum::Arm;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::sync::{Mutex, OnceLock};

/// FWHM of MILES spectra, Å (constant over the range).
pub const MILES_FWHM_ANGSTROM: f64 = 2.5;
const FWHM_PER_SIGMA: f64 = 2.354_820_045;

/// A star's light at rest: vacuum wavelengths (Å), flux, and the line-spread FWHM (Å) it was
/// recorded or emulated at. Pixels it does not cover are simply absent.
#[derive(Debug, Clone)]
pub struct RestSpectrum {
    pub wave: Vec<f64>,
    pub flux: Vec<f32>,
    pub fwhm_angstrom: f64,
}

impl RestSpectrum {
    /// The emulated star at MILES resolution over [`lo`, `hi`] Å only (within MILES' range: no
    /// red continuation), for checks that need a window, not a survey's whole range.
    pub fn emulated_window(emulator: &Emulator, star: &StarLabels, lo: f64, hi: f64) -> Self {
        let wave = emulator.wave_vacuum();
        let first = wave.partition_point(|w| *w < lo).saturating_sub(1);
        let last = wave.partition_point(|w| *w <= hi).min(wave.len());
        let flux = emulator.spectrum_pixels(star.teff, star.logg, star.feh, first..last);
        Self { wave: wave[first..last].to_vec(), flux, fwhm_angstrom: MILES_FWHM_ANGSTROM }
    }

    /// The emulated star at MILES resolution, continued to the red up to `end` Å.
    pub fn emulated(emulator: &Emulator, star: &StarLabels, end: f64) -> Self {
        let flux = emulator.spectrum(star.teff, star.logg, star.feh);
        let (wave, flux) = extend_to_red_until(emulator.wave_vacuum(), &flux, star.teff, star.logg, star.feh, end);
        Self { wave, flux, fwhm_angstrom: MILES_FWHM_ANGSTROM }
    }
}

/// The star Doppler-shifted to `rv_kms`, at its own resolution, on vacuum wavelengths.
pub fn observed_frame_spectrum(rest: RestSpectrum, rv_kms: f64) -> Arm {
    let doppler = 1.0 + rv_kms / C_KMS;
    let n = rest.wave.len();
    Arm {
        name: "model".into(),
        wavelength: rest.wave.into_iter().map(|w| w * doppler).collect(),
        flux: rest.flux,
        ivar: vec![1.0; n],
        mask: vec![],
        lsf_fwhm_angstrom: Some(rest.fwhm_angstrom),
    }
}

/// How far to the red a rest-frame model must reach for pixels up to `last` Å: room for a
/// blueshift of 3,000 km/s and the line-spread function's wings.
pub fn rest_frame_end(last: f64) -> f64 {
    last * 1.01 + 20.0
}

/// The Gaussian line-spread function from the model's resolution to resolving power R, as
/// normalised taps per pixel of the model's (fixed) rest-frame grid. Built once per R and reused for every
/// star: the model is noise-free, so a plain weighted sum replaces the general degradation
/// (masks, variance propagation, two exponentials per pixel).
///
/// Convolving in the rest frame is exact for a resolving power: the observed FWHM λ_obs/R maps to
/// λ_rest/R in the rest frame, and the model's FWHM (MILES: 2.5 Å) is a rest-frame property.
struct LsfTable {
    /// Pixel i reads model pixels first[i] .. first[i] + len(i) with taps[start[i]..start[i + 1]].
    first: Vec<usize>,
    start: Vec<usize>,
    taps: Vec<f32>,
}

impl LsfTable {
    fn new(wave: &[f64], model_fwhm: f64, r: f64) -> Self {
        let n = wave.len();
        let (mut first, mut start, mut taps) = (Vec::with_capacity(n), Vec::with_capacity(n + 1), Vec::new());
        for i in 0..n {
            start.push(taps.len());
            let fwhm_target = wave[i] / r;
            if fwhm_target <= model_fwhm || n < 3 {
                first.push(i);
                taps.push(1.0);
                continue;
            }
            let sigma = (fwhm_target * fwhm_target - model_fwhm * model_fwhm).sqrt() / FWHM_PER_SIGMA;
            let dl = if i + 1 < n { wave[i + 1] - wave[i] } else { wave[i] - wave[i - 1] };
            let sigma_px = sigma / dl;
            let half = (4.0 * sigma_px).ceil() as usize;
            let (lo, hi) = (i.saturating_sub(half), (i + half).min(n - 1));
            let weights: Vec<f64> =
                (lo..=hi).map(|k| (-0.5 * ((k as f64 - i as f64) / sigma_px).powi(2)).exp()).collect();
            let sum: f64 = weights.iter().sum();
            first.push(lo);
            taps.extend(weights.iter().map(|w| (w / sum) as f32));
        }
        start.push(taps.len());
        LsfTable { first, start, taps }
    }

    /// The table for resolving power `r` on the model grid `wave` at `model_fwhm` (the same for
    /// every emulated star; one per pixel range for library stars).
    fn for_resolution(wave: &[f64], model_fwhm: f64, r: f64) -> &'static LsfTable {
        type Key = (u64, u64, u64, usize);
        static TABLES: OnceLock<Mutex<Vec<(Key, &'static LsfTable)>>> = OnceLock::new();
        let key = (r.to_bits(), model_fwhm.to_bits(), wave[0].to_bits(), wave.len());
        let mut tables = TABLES.get_or_init(|| Mutex::new(Vec::new())).lock().expect("LSF table cache");
        if let Some((_, t)) = tables.iter().find(|(k, _)| *k == key) {
            return t;
        }
        // A handful of grids per process: leaking them keeps the lookups lock-short.
        let table: &'static LsfTable = Box::leak(Box::new(LsfTable::new(wave, model_fwhm, r)));
        tables.push((key, table));
        table
    }

    fn convolve(&self, flux: &[f32]) -> Vec<f32> {
        (0..flux.len())
            .map(|i| {
                let taps = &self.taps[self.start[i]..self.start[i + 1]];
                let window = &flux[self.first[i]..self.first[i] + taps.len()];
                // Four independent partial sums: a float sum is otherwise one serial chain.
                let mut acc = [0.0f32; 4];
                let (tc, fc) = (taps.chunks_exact(4), window.chunks_exact(4));
                let (tr, fr) = (tc.remainder(), fc.remainder());
                for (t, f) in tc.zip(fc) {
                    for k in 0..4 {
                        acc[k] += t[k] * f[k];
                    }
                }
                let tail: f32 = tr.iter().zip(fr).map(|(t, f)| t * f).sum();
                (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
            })
            .collect()
    }
}

/// The star seen by an instrument of resolving power `r` at radial velocity `rv_kms`: convolved
/// to R (where the instrument is coarser than the model), Doppler-shifted, and integrated onto the
/// pixels bounded by `edges`. Pixels the model does not cover (half or more) come back as 0.
pub fn instrument_sample(rest: &RestSpectrum, rv_kms: f64, r: f64, edges: &[f64]) -> Vec<f32> {
    let convolved = LsfTable::for_resolution(&rest.wave, rest.fwhm_angstrom, r).convolve(&rest.flux);
    let doppler = 1.0 + rv_kms / C_KMS;
    let observed: Vec<f64> = rest.wave.iter().map(|w| w * doppler).collect();
    integrate_onto(&observed, &convolved, edges)
}

/// Flux-conserving resampling of a noise-free model (what [`resample`] does with every pixel
/// usable, minimum coverage one half), from the running integral of the model: two lookups per
/// output pixel instead of a sum over the input pixels it overlaps.
fn integrate_onto(wave: &[f64], flux: &[f32], edges: &[f64]) -> Vec<f32> {
    let e = pixel_edges(wave);
    let n = flux.len();
    let mut cumulative = Vec::with_capacity(n + 1);
    cumulative.push(0.0f64);
    for k in 0..n {
        cumulative.push(cumulative[k] + flux[k] as f64 * (e[k + 1] - e[k]));
    }
    // ∫ flux from e[0] to x, for ascending x (one pointer through the input pixels).
    let mut m = 0usize;
    let mut integral = |x: f64| -> f64 {
        let x = x.clamp(e[0], e[n]);
        while m + 1 < n && e[m + 1] <= x {
            m += 1;
        }
        cumulative[m] + flux[m] as f64 * (x - e[m])
    };
    let at_edges: Vec<f64> = edges.iter().map(|&x| integral(x)).collect();
    (0..edges.len() - 1)
        .map(|j| {
            let (lo, hi) = (edges[j], edges[j + 1]);
            let covered = hi.min(e[n]) - lo.max(e[0]);
            if covered >= 0.5 * (hi - lo) && covered > 0.0 {
                ((at_edges[j + 1] - at_edges[j]) / covered) as f32
            } else {
                0.0
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::EXTENSION_END_VACUUM;
    use crate::preprocess::{degrade_resolution, resample};

    #[test]
    fn the_lsf_table_matches_the_general_degradation() {
        let star = StarLabels { teff: 4800.0, logg: 2.5, feh: -0.3 };
        let RestSpectrum { wave, flux, .. } = RestSpectrum::emulated(Emulator::builtin(), &star, EXTENSION_END_VACUUM);
        let fast = LsfTable::for_resolution(&wave, MILES_FWHM_ANGSTROM, 1800.0).convolve(&flux);
        let n = wave.len();
        let mut arm = Arm {
            name: "model".into(),
            wavelength: wave.clone().into(),
            flux: flux.clone(),
            ivar: vec![1.0; n],
            mask: vec![],
            lsf_fwhm_angstrom: Some(MILES_FWHM_ANGSTROM),
        };
        degrade_resolution(&mut arm, 1800.0);
        let worst = fast.iter().zip(&arm.flux).map(|(a, b)| ((a - b) / b.abs().max(1e-3)).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "largest relative difference {worst}");
        // The running-integral resampling equals the general one on a noise-free model, including
        // the partly covered pixels at both ends.
        let edges: Vec<f64> = (0..2000).map(|k| 3500.0 + 3.1 * k as f64).collect();
        let ours = integrate_onto(&wave, &fast, &edges);
        let reference = resample(&Arm { flux: fast.clone(), lsf_fwhm_angstrom: None, ..arm }, &edges, 0.5).flux;
        assert_eq!(ours.len(), reference.len());
        for (j, (a, b)) in ours.iter().zip(&reference).enumerate() {
            assert!((a - b).abs() <= 2e-5 * b.abs().max(1e-3), "pixel {j}: {a} vs {b}");
        }
        assert!(reference[0] == 0.0 && ours[0] == 0.0 && *ours.last().unwrap() > 0.0);
        // It does smooth: the Ca II triplet core at R = 1800 is shallower than at MILES resolution.
        let core = wave.iter().position(|w| *w > 8544.5).unwrap();
        assert!(fast[core] > flux[core] + 0.01, "{} vs {}", fast[core], flux[core]);
    }
}
