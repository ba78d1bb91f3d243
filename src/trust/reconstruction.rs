//! The reconstruction check: does the star look like what the model says it is? The MILES
//! emulator at the predicted labels, seen at the spectrum's resolution on the model's window, is
//! compared with the observed normalised spectrum; the reduced χ² says how well it fits.
//!
//! A regressor has no χ² of its own (forward-model pipelines such as RVSpecFit, FERRE and The
//! Payne flag misfits by theirs): a star unlike anything in training still gets labels, and only a
//! check of the spectrum against those labels shows that they describe something else. Both
//! spectra are brought to one continuum by a quadratic in wavelength fitted to their ratio (the
//! normalisations of ingest and of the emulator differ smoothly, real spectra carry calibration
//! errors), so χ² measures lines. Each pixel's variance adds a model error of
//! [`MODEL_ERROR`] × flux (the emulator's held-out line residuals are 2–5 %), so a good fit
//! at any S/N gives χ² ≈ 1 and bright stars are not flagged for the emulator's own limits.
//! The threshold that flags comes from real stars (`starpipe calibrate`); mock stars are drawn from
//! the emulator itself and cannot set it.

use super::resolution::LAMOST_R;
use crate::grid::LogGrid;
use crate::mock::Emulator;
use crate::mock::labels::StarLabels;
use crate::mock::render::{RestSpectrum, instrument_sample, rest_frame_end};

/// Relative model error per pixel added in quadrature to the noise.
pub const MODEL_ERROR: f64 = 0.03;
/// Model pixels kept either side of the window, Å: several LSF widths at R = 1800.
const MARGIN: f64 = 30.0;
/// Where the emulator is defined (MILES' label coverage); predictions are clamped into it.
const TEFF_RANGE: (f64, f64) = (2800.0, 40000.0);
const LOGG_RANGE: (f64, f64) = (-0.5, 6.0);
const FEH_RANGE: (f64, f64) = (-3.0, 1.0);

/// The check for one model window.
pub struct Reconstruction {
    edges: Vec<f64>,
    wave: Vec<f64>,
    /// Resolving power the shards were degraded to by ingest, if any.
    degraded_to_r: Option<f64>,
}

impl Reconstruction {
    pub fn new(window: &LogGrid, degraded_to_r: Option<f64>) -> Self {
        Self { edges: window.edges(), wave: window.wavelengths(), degraded_to_r }
    }

    /// The emulated spectrum at `labels` on the window, at the resolution a `survey` row has.
    fn model(&self, labels: [f64; 3], survey: &str) -> Vec<f32> {
        let star = StarLabels {
            teff: labels[0].clamp(TEFF_RANGE.0, TEFF_RANGE.1),
            logg: labels[1].clamp(LOGG_RANGE.0, LOGG_RANGE.1),
            feh: labels[2].clamp(FEH_RANGE.0, FEH_RANGE.1),
        };
        // The window and the line-spread function's reach beyond it (MILES ends at 7411 Å, past
        // every model window; a window beyond it would be covered by no pixel and give NaN).
        let (lo, hi) = (self.edges[0] - MARGIN, self.edges[self.edges.len() - 1] + MARGIN);
        let rest = if hi < Emulator::builtin().wave_vacuum().last().copied().unwrap_or(0.0) {
            RestSpectrum::emulated_window(Emulator::builtin(), &star, lo, hi)
        } else {
            RestSpectrum::emulated(Emulator::builtin(), &star, rest_frame_end(hi))
        };
        // Other surveys than LAMOST are seen at the emulator's own 2.5 Å unless ingest degraded them.
        let r = self.degraded_to_r.unwrap_or(if survey == "lamost" { LAMOST_R } else { f64::INFINITY });
        instrument_sample(&rest, 0.0, r, &self.edges)
    }

    /// Reduced χ² of the observed window (normalised flux and ivar) against the emulator at
    /// `labels`; NaN with fewer than 50 usable pixels or non-finite labels.
    pub fn chi2(&self, labels: [f64; 3], survey: &str, flux: &[f32], ivar: &[f32]) -> f64 {
        self.fit(labels, survey, flux, ivar).map_or(f64::NAN, |f| f.chi2_red)
    }

    /// The window's wavelengths (vacuum, rest frame, Å), one per pixel of [`Fit::model`].
    pub fn wavelengths(&self) -> &[f64] {
        &self.wave
    }

    /// The emulator at `labels` brought to the observed continuum, and the reduced χ² of the fit:
    /// what `chi2` reports, with the curve behind it (for a per-star figure). None with fewer than
    /// 50 usable pixels or non-finite labels.
    pub fn fit(&self, labels: [f64; 3], survey: &str, flux: &[f32], ivar: &[f32]) -> Option<Fit> {
        if labels.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let model = self.model(labels, survey);
        let usable: Vec<usize> = (0..flux.len())
            .filter(|&i| ivar[i] > 0.0 && flux[i].is_finite() && model[i] > 0.0 && model[i].is_finite())
            .collect();
        if usable.len() < 50 {
            return None;
        }
        // obs ≈ model · (c0 + c1 x + c2 x²): weighted linear least squares in c.
        let (lo, hi) = (self.wave[0], self.wave[self.wave.len() - 1]);
        let x = |i: usize| 2.0 * (self.wave[i] - lo) / (hi - lo) - 1.0;
        let weight = |i: usize, m: f64| 1.0 / (1.0 / ivar[i] as f64 + (MODEL_ERROR * m).powi(2));
        let mut ata = [[0.0f64; 3]; 3];
        let mut atb = [0.0f64; 3];
        for &i in &usable {
            let m = model[i] as f64;
            let basis = [m, m * x(i), m * x(i) * x(i)];
            let w = weight(i, m);
            for a in 0..3 {
                atb[a] += w * basis[a] * flux[i] as f64;
                for b in 0..3 {
                    ata[a][b] += w * basis[a] * basis[b];
                }
            }
        }
        let c = solve3(ata, atb)?;
        let fitted: Vec<f64> =
            (0..flux.len()).map(|i| model[i] as f64 * (c[0] + c[1] * x(i) + c[2] * x(i) * x(i))).collect();
        let chi2: f64 = usable.iter().map(|&i| weight(i, fitted[i]) * (flux[i] as f64 - fitted[i]).powi(2)).sum();
        // σ per pixel as the χ² counts it (noise and model error); infinite where unusable.
        let sigma = (0..flux.len())
            .map(|i| if usable.binary_search(&i).is_ok() { 1.0 / weight(i, fitted[i]).sqrt() } else { f64::INFINITY })
            .collect();
        Some(Fit { model: fitted, sigma, chi2_red: chi2 / (usable.len() - 3) as f64 })
    }
}

/// The reconstruction of one spectrum.
#[derive(Debug, Clone)]
pub struct Fit {
    /// The emulator at the labels, on the observed continuum, per window pixel.
    pub model: Vec<f64>,
    /// Per-pixel σ the χ² uses (noise and [`MODEL_ERROR`]); infinite for masked pixels.
    pub sigma: Vec<f64>,
    pub chi2_red: f64,
}

/// One spectrum of the shards with its reconstruction at given labels (a per-star figure).
#[derive(Debug, Clone)]
pub struct SpectrumReconstruction {
    pub spectrum_id: String,
    pub survey: String,
    pub shard: std::path::PathBuf,
    /// Window wavelengths (vacuum, rest frame, Å), normalised flux and ivar (0 = masked).
    pub wave: Vec<f64>,
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
    /// None when too few pixels are usable or the labels are not finite.
    pub fit: Option<Fit>,
}

/// Finds the `wanted` spectra (spectrum id, labels) in the normalised-spectra `shards` and
/// reconstructs each on `window` at its labels, as `infer` does for `chi2_red`. Ids not found are
/// left out of the result.
pub fn reconstruct_spectra(
    shards: &[std::path::PathBuf],
    window: &LogGrid,
    wanted: &[(String, [f64; 3])],
) -> super::Result<Vec<SpectrumReconstruction>> {
    use crate::shards::read::{READ_BATCH_ROWS, RawPixels, for_each_batch};
    let labels: std::collections::HashMap<&str, [f64; 3]> = wanted.iter().map(|(id, l)| (id.as_str(), *l)).collect();
    let mut found = Vec::new();
    for shard in shards {
        let check = Reconstruction::new(window, super::resolution::degraded_to_r(shard)?);
        for_each_batch::<crate::io::FileError>(shard, window, READ_BATCH_ROWS, RawPixels::Keep, |b| {
            let n = b.n_features;
            for i in 0..b.len() {
                let Some(l) = labels.get(b.spectrum_id[i].as_str()) else { continue };
                let (flux, ivar) = (b.flux[i * n..(i + 1) * n].to_vec(), b.ivar[i * n..(i + 1) * n].to_vec());
                found.push(SpectrumReconstruction {
                    spectrum_id: b.spectrum_id[i].clone(),
                    survey: b.survey[i].clone(),
                    shard: shard.clone(),
                    wave: check.wavelengths().to_vec(),
                    fit: check.fit(*l, &b.survey[i], &flux, &ivar),
                    flux,
                    ivar,
                });
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// Solves a 3×3 system by Cramer's rule (None when singular).
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    // Also refuses NaN.
    if d.abs().partial_cmp(&1e-300) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    Some([0, 1, 2].map(|k| {
        let mut m = a;
        for r in 0..3 {
            m[r][k] = b[r];
        }
        det(m) / d
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::GridPreset;

    #[test]
    fn the_emulator_fits_itself_and_not_another_star() {
        let window = LogGrid::preset(GridPreset::Specclip);
        let r = Reconstruction::new(&window, None);
        let sun = [5777.0, 4.44, 0.0];
        // The model itself, as a normalised spectrum with a tilt, at S/N 50 per pixel.
        let model = r.model(sun, "lamost");
        let mean = model.iter().map(|v| *v as f64).sum::<f64>() / model.len() as f64;
        let n = model.len();
        let flux: Vec<f32> = model
            .iter()
            .enumerate()
            .map(|(i, m)| (*m as f64 / mean * (1.0 + 0.1 * i as f64 / n as f64)) as f32)
            .collect();
        let ivar: Vec<f32> = flux.iter().map(|f| (2500.0 / (*f as f64).powi(2)) as f32).collect();
        let good = r.chi2(sun, "lamost", &flux, &ivar);
        assert!(good < 0.1, "noise-free self-fit χ² {good}");
        // The same spectrum against labels 1500 K off, or against an M giant's: a poor fit.
        let hotter = r.chi2([7277.0, 4.44, 0.0], "lamost", &flux, &ivar);
        let m_giant = r.chi2([3600.0, 1.0, 0.0], "lamost", &flux, &ivar);
        assert!(hotter > 20.0 * good.max(0.05) && m_giant > 20.0 * good.max(0.05), "{good} {hotter} {m_giant}");
        // Too few usable pixels, or no labels: no verdict.
        assert!(r.chi2(sun, "lamost", &flux, &vec![0.0; n]).is_nan());
        assert!(r.chi2([f64::NAN, 4.4, 0.0], "lamost", &flux, &ivar).is_nan());
    }
}
