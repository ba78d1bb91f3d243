//! The MILES spectral emulator: flux as a smooth function of (Teff, log g, [Fe/H]).
//!
//! Fitted by `scripts/emulator/fit_miles_emulator.py` (see its header and
//! `data/emulator/PROVENANCE.md`): per MILES pixel, a 23-term polynomial in
//! x = log10 Teff − 3.7617, y = log g − 4.44, z = [Fe/H], for three overlapping Teff regimes blended
//! linearly in log Teff. Flux is normalised to its mean over 4000–7000 Å (air). The coefficients are
//! compiled into the binary, so mocks need nothing but starpipe.
//! Beyond MILES (7409.6 Å air) the spectrum continues with [`super::red_extension`].

use super::MockError;
use super::air_vacuum::air_to_vacuum;
use serde::Deserialize;
use std::sync::OnceLock;

const COEFFICIENTS: &[u8] = include_bytes!("../../data/emulator/miles_emulator.safetensors");
/// The fit's quality report (held-out and leave-one-out residuals), printed by `--emulator-report`.
pub const REPORT_JSON: &str = include_str!("../../data/emulator/emulator_report.json");

#[derive(Debug, Clone, Deserialize)]
struct ModelMeta {
    terms: Vec<[u32; 3]>,
    x0: f64,
    y0: f64,
    blend_teff: [[f64; 2]; 2],
}

/// The emulator, loaded once per process.
pub struct Emulator {
    meta: ModelMeta,
    /// [regime][term][pixel]
    coefficients: Vec<f32>,
    npix: usize,
    wave_air: Vec<f64>,
    wave_vacuum: Vec<f64>,
}

impl Emulator {
    /// The labels MILES covers, where the emulator may be asked for a spectrum.
    pub const COVERAGE: &'static str = "Teff 2800–40000 K, log g −0.5–6, [Fe/H] −3–1";

    /// Whether (Teff K, log g dex, [Fe/H] dex) lies inside [`Self::COVERAGE`].
    pub fn covers(teff: f64, logg: f64, feh: f64) -> bool {
        (2800.0..=40000.0).contains(&teff) && (-0.5..=6.0).contains(&logg) && (-3.0..=1.0).contains(&feh)
    }

    /// The emulator compiled into starpipe.
    pub fn builtin() -> &'static Emulator {
        static EMULATOR: OnceLock<Emulator> = OnceLock::new();
        EMULATOR
            .get_or_init(|| Emulator::from_safetensors(COEFFICIENTS).expect("the built-in emulator is valid (tested)"))
    }

    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, MockError> {
        let err = |e: String| MockError::Emulator(e);
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| err(e.to_string()))?;
        let model =
            header.metadata().as_ref().and_then(|m| m.get("model")).ok_or_else(|| err("no model metadata".into()))?;
        let meta: ModelMeta = serde_json::from_str(model).map_err(|e| err(e.to_string()))?;
        let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| err(e.to_string()))?;
        let c = tensors.tensor("coefficients").map_err(|e| err(e.to_string()))?;
        let shape = c.shape().to_vec();
        if shape.len() != 3 || shape[0] != 3 || shape[1] != meta.terms.len() || c.dtype() != safetensors::Dtype::F32 {
            return Err(err(format!("coefficients have shape {shape:?} / {:?}", c.dtype())));
        }
        let coefficients: Vec<f32> =
            c.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let w = tensors.tensor("wave_air").map_err(|e| err(e.to_string()))?;
        let wave_air: Vec<f64> =
            w.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        if wave_air.len() != shape[2] {
            return Err(err("wave_air and coefficients disagree in length".into()));
        }
        let wave_vacuum = wave_air.iter().map(|&w| air_to_vacuum(w)).collect();
        Ok(Self { meta, coefficients, npix: shape[2], wave_air, wave_vacuum })
    }

    pub fn wave_air(&self) -> &[f64] {
        &self.wave_air
    }

    /// MILES pixel centres converted to vacuum, Å.
    pub fn wave_vacuum(&self) -> &[f64] {
        &self.wave_vacuum
    }

    /// Weights of the cool, warm and hot regimes at `teff` (they sum to 1).
    pub fn regime_weights(&self, teff: f64) -> [f64; 3] {
        let lt = teff.log10();
        let ramp = |[lo, hi]: [f64; 2]| ((lt - lo.log10()) / (hi.log10() - lo.log10())).clamp(0.0, 1.0);
        let (cool_warm, warm_hot) = (ramp(self.meta.blend_teff[0]), ramp(self.meta.blend_teff[1]));
        [1.0 - cool_warm, cool_warm * (1.0 - warm_hot), warm_hot]
    }

    /// Emulated flux on the MILES pixels (normalised to mean 1 over 4000–7000 Å air).
    pub fn spectrum(&self, teff: f64, logg: f64, feh: f64) -> Vec<f32> {
        self.spectrum_pixels(teff, logg, feh, 0..self.npix)
    }

    /// Emulated flux on MILES pixels `pixels` only (a window costs only its share).
    pub fn spectrum_pixels(&self, teff: f64, logg: f64, feh: f64, pixels: std::ops::Range<usize>) -> Vec<f32> {
        let (x, y, z) = (teff.log10() - self.meta.x0, logg - self.meta.y0, feh);
        let design: Vec<f64> =
            self.meta.terms.iter().map(|&[a, b, c]| x.powi(a as i32) * y.powi(b as i32) * z.powi(c as i32)).collect();
        let nt = design.len();
        // f32 sums: eight pixels per instruction instead of four, and the flux is f32 anyway
        // (measured: within 6e-6 of f64 sums over the label range; the Python-reference test holds
        // it to 1e-4).
        let mut out = vec![0.0f32; pixels.len()];
        for (k, w) in self.regime_weights(teff).into_iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            for (t, d) in design.iter().enumerate() {
                let row = &self.coefficients[(k * nt + t) * self.npix..][pixels.clone()];
                let wd = (w * d) as f32;
                for (o, c) in out.iter_mut().zip(row) {
                    *o += wd * *c;
                }
            }
        }
        out
    }
}

/// The emulator's quality report (`data/emulator/report.json`) as text tables.
pub fn report_text(json: &str) -> Result<String, String> {
    use std::fmt::Write;
    let mut s = String::new();
    let r: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("emulator report: {e}"))?;
    writeln!(
        s,
        "MILES emulator: {} labelled stars, {} fitted, {} held out",
        r["stars"]["labelled"], r["stars"]["training"], r["stars"]["held_out"]
    )
    .expect("a String takes writes");
    for (title, key) in [
        ("held-out stars, flux (both normalised to mean 1 over 4000-7000 A)", "held_out_rms_flux"),
        ("held-out stars, lines (continuum-shape differences removed)", "held_out_rms_lines"),
        ("training stars, leave-one-out, flux", "loo_rms_flux"),
    ] {
        writeln!(s, "\nRMS residual, {title}:").expect("a String takes writes");
        let table = r[key].as_object().ok_or_else(|| format!("emulator report: no table {key}"))?;
        let regions: Vec<String> = table
            .values()
            .next()
            .and_then(|v| v.as_object())
            .map(|o| o.keys().filter(|k| *k != "n_stars").cloned().collect())
            .unwrap_or_default();
        writeln!(
            s,
            "  {:<20} {:>5}  {}",
            "Teff regime",
            "stars",
            regions.iter().map(|r| format!("{r:>10}")).collect::<String>()
        )
        .expect("a String takes writes");
        for (regime, row) in table {
            let cells: String =
                regions.iter().map(|k| format!("{:>10.3}", row[k].as_f64().unwrap_or(f64::NAN))).collect();
            writeln!(s, "  {regime:<20} {:>5}  {cells}", row["n_stars"]).expect("a String takes writes");
        }
    }
    writeln!(s, "\nPast 7411.6 A (vacuum) spectra come from a parametric model (Planck continuum, Ca II triplet,")
        .expect("a String takes writes");
    writeln!(s, "Paschen, Na I, TiO), not fitted to data: never score label accuracy there. See data/emulator/.")
        .expect("a String takes writes");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Reference {
        teff: f64,
        logg: f64,
        feh: f64,
        pixels: Vec<usize>,
        flux: Vec<f64>,
    }

    #[test]
    fn matches_the_python_fit_at_reference_labels() {
        let report: serde_json::Value = serde_json::from_str(REPORT_JSON).unwrap();
        let refs: Vec<Reference> = serde_json::from_value(report["reference_predictions"].clone()).unwrap();
        assert!(refs.len() >= 5);
        let e = Emulator::builtin();
        for r in refs {
            let s = e.spectrum(r.teff, r.logg, r.feh);
            for (p, f) in r.pixels.iter().zip(&r.flux) {
                assert!((s[*p] as f64 - f).abs() < 1e-4 * f.abs().max(1.0), "{} K pixel {p}: {} vs {f}", r.teff, s[*p]);
            }
        }
    }

    #[test]
    fn regimes_blend_continuously() {
        let e = Emulator::builtin();
        for t in [4000.0, 4500.0, 7000.0, 9000.0] {
            let (a, b) = (e.spectrum(t - 1.0, 4.0, 0.0), e.spectrum(t + 1.0, 4.0, 0.0));
            let max_jump = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(max_jump < 0.01, "jump {max_jump} at {t} K");
            let w = e.regime_weights(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn a_sun_like_star_looks_like_one() {
        let e = Emulator::builtin();
        let sun = e.spectrum(5777.0, 4.44, 0.0);
        let mean_in = |lo: f64, hi: f64| {
            let v: Vec<f32> =
                e.wave_air().iter().zip(&sun).filter(|(w, _)| **w >= lo && **w <= hi).map(|(_, f)| *f).collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        // Normalised to ~1 over 4000–7000 Å; deep Hα and Na D cores; bluer stars are brighter in the blue.
        assert!((mean_in(4000.0, 7000.0) - 1.0).abs() < 0.05);
        assert!(mean_in(6560.0, 6566.0) < 0.8 * mean_in(6530.0, 6545.0), "Hα absorption");
        let hot = e.spectrum(7500.0, 4.0, 0.0);
        let blue_ratio = |s: &[f32]| s[600] / s[3000];
        assert!(blue_ratio(&hot) > blue_ratio(&sun));
    }
}
