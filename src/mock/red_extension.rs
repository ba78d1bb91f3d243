//! Continuing emulated spectra past the red end of MILES (7409.6 Å air) to 9830 Å, where LAMOST
//! (to 9100 Å) and DESI (to 9824 Å) still observe.
//!
//! A parametric model, physically motivated but **not calibrated on data** (shared docs
//! reference-data.md §5.2): a Planck continuum at Teff, scaled to the emulator over the last 200 Å
//! of MILES, times the strong red features, each a smooth function of (Teff, log g, [Fe/H]):
//! - Ca II triplet 8498/8542/8662 Å: total equivalent width ~7.5 Å for solar-metallicity giants,
//!   weaker with lower [Fe/H] and higher log g (the Starkenburg et al. 2010 / Cenarro et al. 2001
//!   trends), fading in A/F stars where the Paschen lines take over;
//! - Paschen lines P12–P16 in stars hotter than ~6500 K, growing to A stars;
//! - Na I 8183/8195 Å, strong in K–M dwarfs (gravity-sensitive), weak in giants;
//! - TiO band heads at 7589, 8432 and 8859 Å in stars cooler than ~4000 K, with a sharp blue edge
//!   and recovery over ~150 Å.
//!
//! Line profiles are Gaussians at MILES resolution (FWHM 2.5 Å) so that the whole spectrum has one
//! line-spread function before the instrument is applied; lines too strong for a 65 %-deep core at
//! that width are widened instead, standing in for their damping wings. Equivalent widths are accurate to perhaps
//! 30–50 %: never score label accuracy on these pixels; `PARAMETRIC_FROM_VACUUM` marks them.

use super::air_vacuum::air_to_vacuum;

/// First vacuum wavelength (Å) not covered by MILES: pixels from here on are parametric.
pub const PARAMETRIC_FROM_VACUUM: f64 = 7411.6;
/// Reddest wavelength the extension reaches, vacuum Å (past DESI's 9824 Å).
pub const EXTENSION_END_VACUUM: f64 = 9830.0;

const FWHM_PER_SIGMA: f64 = 2.354_820_045;
const MILES_FWHM: f64 = 2.5;

/// Planck B_λ(T) up to a constant (λ in Å).
fn planck(lambda: f64, teff: f64) -> f64 {
    let x = 1.438_776_877e8 / (lambda * teff); // hc/(λ k T) with λ in Å
    1.0 / (lambda.powi(5) * x.exp_m1())
}

/// One absorption line: (vacuum centre Å, equivalent width Å).
fn absorption_lines(teff: f64, logg: f64, feh: f64) -> Vec<(f64, f64)> {
    let feh = feh.clamp(-3.0, 0.6);
    let mut lines = Vec::new();
    // Ca II triplet: strength falls off above ~6500 K and below ~3500 K.
    let cat_temperature = ((7500.0 - teff) / 1500.0).clamp(0.0, 1.0) * ((teff - 3000.0) / 800.0).clamp(0.2, 1.0);
    let cat_total = (7.5 + 1.8 * feh - 0.6 * (logg - 2.5)).clamp(1.0, 10.0) * cat_temperature.max(0.15);
    for (air, share) in [(8498.02, 0.22), (8542.09, 0.44), (8662.14, 0.34)] {
        lines.push((air_to_vacuum(air), cat_total * share));
    }
    // Paschen P12–P16: from nothing at 6500 K to ~1.5 Å each near 9000 K.
    let paschen = 1.5 * ((teff - 6500.0) / 2500.0).clamp(0.0, 1.0);
    if paschen > 0.0 {
        for air in [8750.47, 8862.78, 8598.39, 8545.38, 8502.48] {
            lines.push((air_to_vacuum(air), paschen));
        }
    }
    // Na I doublet: dwarfs cooler than ~5500 K.
    let dwarf = ((logg - 3.5) / 1.0).clamp(0.0, 1.0);
    let na = (1.8 * ((5500.0 - teff) / 1500.0).clamp(0.0, 1.0)) * (0.25 + 0.75 * dwarf);
    if na > 0.0 {
        lines.push((air_to_vacuum(8183.26), na * 0.45));
        lines.push((air_to_vacuum(8194.82), na * 0.55));
    }
    lines
}

/// TiO absorption as a multiplicative factor at vacuum wavelength `lambda`.
fn tio_transmission(lambda: f64, teff: f64) -> f64 {
    let depth = (0.6 * (4000.0 - teff) / 800.0).clamp(0.0, 0.6);
    if depth == 0.0 {
        return 1.0;
    }
    let mut t = 1.0;
    for head_air in [7589.0, 8432.0, 8859.0] {
        let head = air_to_vacuum(head_air);
        if lambda >= head {
            t *= 1.0 - depth * (-(lambda - head) / 150.0).exp();
        }
    }
    t
}

/// Deepest a line core gets at MILES resolution; stronger lines grow wider instead (their
/// damping wings), keeping the equivalent width.
const MAX_LINE_DEPTH: f64 = 0.65;

/// A Gaussian absorption line ready to evaluate: centre, reach (6σ), peak depth, −1/(2σ²).
struct Profile {
    centre: f64,
    reach: f64,
    depth: f64,
    exponent: f64,
}

/// The profiles of (centre, equivalent width) lines at MILES resolution, widened where a line
/// would be deeper than [`MAX_LINE_DEPTH`].
fn profiles(lines: &[(f64, f64)]) -> Vec<Profile> {
    let root_two_pi = (2.0 * std::f64::consts::PI).sqrt();
    lines
        .iter()
        .map(|&(centre, ew)| {
            let sigma = (MILES_FWHM / FWHM_PER_SIGMA).max(ew / (MAX_LINE_DEPTH * root_two_pi));
            Profile { centre, reach: 6.0 * sigma, depth: ew / (sigma * root_two_pi), exponent: -0.5 / (sigma * sigma) }
        })
        .collect()
}

/// Line absorption (fraction of the continuum removed) at vacuum wavelength `lambda`.
fn absorbed(lambda: f64, lines: &[Profile]) -> f64 {
    let mut a = 0.0;
    for p in lines {
        let d = lambda - p.centre;
        if d.abs() <= p.reach {
            a += p.depth * (p.exponent * d * d).exp();
        }
    }
    a.min(0.95)
}

/// The Planck continuum at each of `wave` (ascending), exact every `STRIDE` pixels and linear in
/// between: over 16 pixels (~14 Å) the curvature of B_λ changes it by < 1e-5, and one exponential
/// per pixel was a tenth of a mock spectrum's cost.
fn planck_continuum(wave: &[f64], teff: f64) -> Vec<f64> {
    const STRIDE: usize = 16;
    let n = wave.len();
    let mut out = vec![0.0; n];
    let mut a = 0;
    while a < n {
        let b = (a + STRIDE).min(n - 1);
        let (pa, pb) = (planck(wave[a], teff), planck(wave[b], teff));
        for k in a..=b {
            let t = if b > a { (wave[k] - wave[a]) / (wave[b] - wave[a]) } else { 0.0 };
            out[k] = pa + t * (pb - pa);
        }
        if b == n - 1 {
            break;
        }
        a = b;
    }
    out
}

/// The emulated spectrum from the blue end of MILES to [`EXTENSION_END_VACUUM`], on vacuum
/// wavelengths: MILES pixels, then 0.9 Å steps. The last 100 Å of MILES blend linearly into the
/// extension so the join has no step.
pub fn extend_to_red(wave_vacuum: &[f64], flux: &[f32], teff: f64, logg: f64, feh: f64) -> (Vec<f64>, Vec<f32>) {
    extend_to_red_until(wave_vacuum, flux, teff, logg, feh, EXTENSION_END_VACUUM)
}

/// [`extend_to_red`] up to `end` Å (vacuum) only: a survey that stops short of 9830 Å (LAMOST,
/// 9100 Å) need not pay for the rest.
pub fn extend_to_red_until(
    wave_vacuum: &[f64],
    flux: &[f32],
    teff: f64,
    logg: f64,
    feh: f64,
    end: f64,
) -> (Vec<f64>, Vec<f32>) {
    let n = wave_vacuum.len();
    let last = wave_vacuum[n - 1];
    // Scale the continuum to the emulator over its last 200 Å.
    let (mut sum_e, mut sum_p) = (0.0, 0.0);
    for (w, f) in wave_vacuum.iter().zip(flux).filter(|(w, _)| **w > last - 200.0) {
        sum_e += *f as f64;
        sum_p += planck(*w, teff) * tio_transmission(*w, teff);
    }
    let scale = if sum_p > 0.0 { sum_e / sum_p } else { 0.0 };
    let lines = profiles(&absorption_lines(teff, logg, feh));
    let mut wave = wave_vacuum.to_vec();
    let step = 0.9;
    let mut w = last + step;
    while w <= end.min(EXTENSION_END_VACUUM) {
        wave.push(w);
        w += step;
    }
    let mut out: Vec<f32> = flux.to_vec();
    out.resize(wave.len(), 0.0);
    let blend_start = last - 100.0;
    let from = wave.partition_point(|w| *w <= blend_start);
    let continuum = planck_continuum(&wave[from..], teff);
    for (k, c) in (from..wave.len()).zip(continuum) {
        let w = wave[k];
        let extension = scale * c * tio_transmission(w, teff) * (1.0 - absorbed(w, &lines));
        out[k] = if k < n {
            let t = (w - blend_start) / 100.0;
            ((1.0 - t) * out[k] as f64 + t * extension) as f32
        } else {
            extension as f32
        };
    }
    (wave, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Emulator;

    fn extended(teff: f64, logg: f64, feh: f64) -> (Vec<f64>, Vec<f32>) {
        let e = Emulator::builtin();
        extend_to_red(e.wave_vacuum(), &e.spectrum(teff, logg, feh), teff, logg, feh)
    }

    fn mean_between(wave: &[f64], flux: &[f32], lo: f64, hi: f64) -> f64 {
        let v: Vec<f64> =
            wave.iter().zip(flux).filter(|(w, _)| **w >= lo && **w <= hi).map(|(_, f)| *f as f64).collect();
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn reaches_past_desi_without_a_step_at_the_join() {
        let (w, f) = extended(5000.0, 2.5, -0.5);
        assert!(*w.last().unwrap() > 9824.0);
        assert!(w.windows(2).all(|p| p[1] > p[0]));
        let before = mean_between(&w, &f, PARAMETRIC_FROM_VACUUM - 60.0, PARAMETRIC_FROM_VACUUM - 20.0);
        let after = mean_between(&w, &f, PARAMETRIC_FROM_VACUUM + 20.0, PARAMETRIC_FROM_VACUUM + 60.0);
        assert!((after / before - 1.0).abs() < 0.05, "join: {before} → {after}");
        assert!(f.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn calcium_triplet_strengthens_with_metallicity_in_giants() {
        // Equivalent width of 8542 Å against the local continuum, in Å.
        let ew = |feh: f64| {
            let (w, f) = extended(4800.0, 2.0, feh);
            let core = air_to_vacuum(8542.09);
            let cont = mean_between(&w, &f, core + 25.0, core + 35.0);
            w.windows(2)
                .zip(&f)
                .filter(|(p, _)| (p[0] - core).abs() < 12.0)
                .map(|(p, v)| (1.0 - *v as f64 / cont) * (p[1] - p[0]))
                .sum::<f64>()
        };
        let (poor, rich) = (ew(-2.0), ew(0.0));
        assert!(rich > poor + 1.0, "CaT 8542 EW {poor:.2} Å at [Fe/H]=-2 vs {rich:.2} Å at 0");
        assert!(rich > 2.0 && rich < 5.0, "solar-metallicity giant 8542 EW {rich:.2} Å");
    }

    #[test]
    fn tio_bands_only_in_cool_stars() {
        let edge = air_to_vacuum(8432.0);
        let drop = |teff: f64| {
            let (w, f) = extended(teff, 4.7, 0.0);
            mean_between(&w, &f, edge + 2.0, edge + 20.0) / mean_between(&w, &f, edge - 20.0, edge - 2.0)
        };
        assert!(drop(3500.0) < 0.8);
        assert!((drop(5500.0) - 1.0).abs() < 0.05);
    }
}
