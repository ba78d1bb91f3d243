//! Continuum normalisation by an inverse-variance-weighted, low-order Chebyshev fit to a fixed set of
//! continuum pixels, per segment, with outlier clipping.
//!
//! Why not a running median or quantile: their level moves with S/N (noise fills in or deepens the
//! selected quantile), which biases every downstream label as a function of S/N. A weighted least-
//! squares fit is linear in the flux, so with a continuum-pixel set that does not depend on the data
//! its expectation does not depend on the noise level. Clipping would break that if it were scaled by
//! the noise alone (at high S/N it would reject weak lines that at low S/N it keeps), so the clipping
//! tolerance has a floor relative to the continuum: only deviations that are large both in noise
//! units and in relative flux (cosmic rays, residual sky, bad columns) are removed.

use crate::grid::LogGrid;
use crate::spectrum::GridSpectrum;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Rest-frame vacuum windows (Å) kept out of the continuum fit: strong stellar lines and bands,
/// the LAMOST dichroic crossover and the strongest telluric bands. Chosen once, by hand, from the
/// lines that dominate FGKM spectra at R ≈ 1800.
pub const LINE_WINDOWS_ANGSTROM: &[(f64, f64)] = &[
    (3920.0, 3950.0), // Ca II K
    (3955.0, 3985.0), // Ca II H + Hε
    (4087.0, 4118.0), // Hδ
    (4222.0, 4234.0), // Ca I 4227
    (4285.0, 4320.0), // CH G band
    (4326.0, 4357.0), // Hγ
    (4847.0, 4878.0), // Hβ
    (5160.0, 5197.0), // Mg b
    (5265.0, 5275.0), // Fe I 5270
    (5780.0, 5910.0), // LAMOST dichroic crossover and Na D
    (6549.0, 6580.0), // Hα
    (6865.0, 6935.0), // telluric O₂ B band
    (7160.0, 7340.0), // telluric H₂O
    (7590.0, 7705.0), // telluric O₂ A band
    (8490.0, 8510.0), // Ca II triplet 8500
    (8534.0, 8554.0), // Ca II triplet 8544
    (8654.0, 8674.0), // Ca II triplet 8664
    (8940.0, 9200.0), // telluric H₂O
];

/// Where segments break, Å: the LAMOST blue/red dichroic; DESI b/r and r/z overlaps.
pub const LAMOST_SEGMENT_BREAKS: &[f64] = &[5850.0];
pub const DESI_SEGMENT_BREAKS: &[f64] = &[5780.0, 7570.0];

/// Shortest segment kept on its own; shorter ones merge into their neighbour.
const MIN_SEGMENT_PIXELS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContinuumConfig {
    /// Chebyshev degree per segment.
    pub degree: usize,
    /// Clip threshold (upward excess only) in units of the combined tolerance below.
    pub clip_sigma: f64,
    /// Relative deviation from the continuum always tolerated before clipping (see module docs).
    pub clip_relative_floor: f64,
    /// Fit–clip iterations at most.
    pub max_iterations: usize,
}

impl Default for ContinuumConfig {
    fn default() -> Self {
        Self { degree: 5, clip_sigma: 4.0, clip_relative_floor: 0.5, max_iterations: 5 }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContinuumError {
    #[error("too few usable continuum pixels in every segment (need {needed} per segment)")]
    NoContinuum { needed: usize },
}

struct Segment {
    pixels: Range<usize>,
    /// Row-major [pixel][degree+1] Chebyshev basis over the segment.
    basis: Vec<f64>,
    /// Row-major [pixel][nb·(nb+1)/2]: the upper triangle of basis·basisᵀ per pixel, so the
    /// normal matrix of any weighting is one vectorisable weighted sum.
    products: Vec<f64>,
}

/// A continuum fitter bound to one grid; build it once, apply it to every spectrum.
pub struct ContinuumFitter {
    config: ContinuumConfig,
    npix: usize,
    is_continuum_pixel: Vec<bool>,
    segments: Vec<Segment>,
}

impl ContinuumFitter {
    pub fn new(grid: &LogGrid, segment_breaks_angstrom: &[f64], config: ContinuumConfig) -> Self {
        let wave = grid.wavelengths();
        let is_continuum_pixel =
            wave.iter().map(|w| !LINE_WINDOWS_ANGSTROM.iter().any(|(lo, hi)| w >= lo && w <= hi)).collect();
        let mut cuts: Vec<usize> = segment_breaks_angstrom
            .iter()
            .map(|b| wave.partition_point(|w| w < b))
            .filter(|&c| c > 0 && c < grid.npix)
            .collect();
        cuts.sort_unstable();
        let mut bounds = vec![0];
        for c in cuts {
            if c - bounds.last().unwrap() >= MIN_SEGMENT_PIXELS && grid.npix - c >= MIN_SEGMENT_PIXELS {
                bounds.push(c);
            }
        }
        bounds.push(grid.npix);
        let nb = config.degree + 1;
        let segments = bounds
            .windows(2)
            .map(|b| {
                let n = b[1] - b[0];
                let mut basis = vec![0.0; n * nb];
                for i in 0..n {
                    let x = if n > 1 { 2.0 * i as f64 / (n - 1) as f64 - 1.0 } else { 0.0 };
                    chebyshev_row(x, &mut basis[i * nb..(i + 1) * nb]);
                }
                let products = basis
                    .chunks_exact(nb)
                    .flat_map(|row| (0..nb).flat_map(move |p| (p..nb).map(move |q| row[p] * row[q])))
                    .collect();
                Segment { pixels: b[0]..b[1], basis, products }
            })
            .collect();
        Self { config, npix: grid.npix, is_continuum_pixel, segments }
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The fitted continuum (0 where a segment could not be fitted).
    pub fn fit_continuum(&self, spec: &GridSpectrum) -> Result<Vec<f64>, ContinuumError> {
        assert_eq!(spec.flux.len(), self.npix, "spectrum is not on this fitter's grid");
        // Fixed-size kernels per degree: the dot products unroll and the sums vectorise.
        let fit = match self.config.degree {
            1 => fit_segment::<2, 3>,
            2 => fit_segment::<3, 6>,
            3 => fit_segment::<4, 10>,
            4 => fit_segment::<5, 15>,
            5 => fit_segment::<6, 21>,
            6 => fit_segment::<7, 28>,
            d => panic!("continuum degree {d} outside 1..=6"),
        };
        let mut continuum = vec![0.0f64; self.npix];
        let mut any = false;
        for seg in &self.segments {
            let px = seg.pixels.clone();
            any |= fit(
                seg,
                &spec.flux[px.clone()],
                &spec.ivar[px.clone()],
                &self.is_continuum_pixel[px.clone()],
                &self.config,
                &mut continuum[px],
            );
        }
        if any { Ok(continuum) } else { Err(ContinuumError::NoContinuum { needed: 4 * (self.config.degree + 1) }) }
    }

    /// Divides by the fitted continuum: flux/cont and ivar·cont². Pixels that are masked, or where
    /// the continuum is not positive, get flux 1 and ivar 0.
    pub fn normalize_continuum(&self, spec: &GridSpectrum) -> Result<GridSpectrum, ContinuumError> {
        let cont = self.fit_continuum(spec)?;
        // A continuum crossing zero (very low S/N, a failed fit) cannot normalise: mask those pixels.
        let positive: Vec<f64> = cont.iter().copied().filter(|c| *c > 0.0).collect();
        let floor = if positive.is_empty() {
            f64::INFINITY
        } else {
            1e-3 * positive.iter().sum::<f64>() / positive.len() as f64
        };
        let mut out = GridSpectrum { flux: vec![1.0; self.npix], ivar: vec![0.0; self.npix] };
        for j in 0..self.npix {
            let c = cont[j];
            if spec.ivar[j] > 0.0 && c > floor {
                out.flux[j] = (spec.flux[j] as f64 / c) as f32;
                out.ivar[j] = (spec.ivar[j] as f64 * c * c) as f32;
            }
        }
        if out.ivar.iter().all(|&v| v == 0.0) {
            return Err(ContinuumError::NoContinuum { needed: 4 * (self.config.degree + 1) });
        }
        Ok(out)
    }
}

/// Fits one segment, writing the continuum into `out`; false (and `out` untouched) when the segment
/// has too few usable continuum pixels. `N` = degree + 1 basis functions, `NT` = N(N+1)/2.
fn fit_segment<const N: usize, const NT: usize>(
    seg: &Segment,
    flux: &[f32],
    ivar: &[f32],
    is_continuum: &[bool],
    config: &ContinuumConfig,
    out: &mut [f64],
) -> bool {
    let needed = 4 * N;
    let clip2 = config.clip_sigma * config.clip_sigma;
    let basis = || seg.basis.chunks_exact(N).map(|r| <&[f64; N]>::try_from(r).expect("N columns"));
    let products = || seg.products.chunks_exact(NT).map(|r| <&[f64; NT]>::try_from(r).expect("NT columns"));
    // Fit weight per pixel: ivar on continuum pixels still in the fit, 0 otherwise.
    let mut weight: Vec<f64> =
        ivar.iter().zip(is_continuum).map(|(&iv, &cont)| if cont && iv > 0.0 { iv as f64 } else { 0.0 }).collect();
    let mut used = weight.iter().filter(|&&w| w > 0.0).count();
    // Normal equations: packed upper triangle of Σ w·b·bᵀ, and Σ w·b·f. Masked pixels have w = 0
    // and add nothing; no branch keeps the loop vectorised.
    let mut upper = [0.0f64; NT];
    let mut rhs = [0.0f64; N];
    for (((&w, prod), row), &f) in weight.iter().zip(products()).zip(basis()).zip(flux) {
        for k in 0..NT {
            upper[k] += w * prod[k];
        }
        let wf = w * f as f64;
        for k in 0..N {
            rhs[k] += wf * row[k];
        }
    }
    let mut fitted = false;
    for iteration in 0..config.max_iterations {
        // Too few pixels left after clipping: keep the last fit rather than lose the segment.
        if used < needed {
            break;
        }
        let Some(c) = solve_upper(&upper, &rhs, N) else { break };
        // Evaluate everywhere (this is the continuum if nothing is clipped) and clip as we go.
        // Clipping removes few pixels: take their terms out of the sums instead of re-summing.
        let clip_now = iteration + 1 < config.max_iterations; // every clip is followed by a refit
        let mut removed = 0;
        for ((((o, w), row), prod), &f) in out.iter_mut().zip(weight.iter_mut()).zip(basis()).zip(products()).zip(flux)
        {
            let model: f64 = (0..N).map(|k| row[k] * c[k]).sum();
            *o = model;
            if !clip_now || *w == 0.0 {
                continue;
            }
            let excess = f as f64 - model;
            // excess² > clip²·(1/w + (floor·model)²), multiplied through by w > 0.
            let floor = config.clip_relative_floor * model;
            if excess > 0.0 && excess * excess * *w > clip2 * (1.0 + *w * floor * floor) {
                for k in 0..NT {
                    upper[k] -= *w * prod[k];
                }
                let wf = *w * f as f64;
                for k in 0..N {
                    rhs[k] -= wf * row[k];
                }
                *w = 0.0;
                removed += 1;
            }
        }
        fitted = true;
        used -= removed;
        if removed == 0 {
            break;
        }
    }
    if !fitted {
        out.fill(0.0);
    }
    fitted
}

fn chebyshev_row(x: f64, row: &mut [f64]) {
    for k in 0..row.len() {
        row[k] = match k {
            0 => 1.0,
            1 => x,
            _ => 2.0 * x * row[k - 1] - row[k - 2],
        };
    }
}

/// Solves the packed symmetric system; None if singular.
fn solve_upper(upper: &[f64], rhs: &[f64], nb: usize) -> Option<Vec<f64>> {
    let mut a = vec![0.0f64; nb * nb];
    let mut k = 0;
    for p in 0..nb {
        for q in p..nb {
            a[p * nb + q] = upper[k];
            a[q * nb + p] = upper[k];
            k += 1;
        }
    }
    let mut b = rhs.to_vec();
    solve(&mut a, &mut b, nb)
}

/// Gaussian elimination with partial pivoting on a small dense system.
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> Option<Vec<f64>> {
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let factor = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::GridPreset;

    #[test]
    fn recovers_a_smooth_continuum_exactly_and_divides_it_out() {
        let grid = LogGrid::preset(GridPreset::Lamost);
        let w = grid.wavelengths();
        let flux: Vec<f32> =
            w.iter().map(|&l| (2.0 + 1e-4 * (l - 6000.0) - 2e-8 * (l - 6000.0).powi(2)) as f32).collect();
        let spec = GridSpectrum { flux, ivar: vec![100.0; grid.npix] };
        let fitter = ContinuumFitter::new(&grid, LAMOST_SEGMENT_BREAKS, ContinuumConfig::default());
        assert_eq!(fitter.segment_count(), 2);
        let norm = fitter.normalize_continuum(&spec).unwrap();
        for j in 0..grid.npix {
            assert!((norm.flux[j] - 1.0).abs() < 1e-4, "{j}: {}", norm.flux[j]);
            let expected_ivar = 100.0 * (spec.flux[j] as f64).powi(2);
            assert!((norm.ivar[j] as f64 / expected_ivar - 1.0).abs() < 1e-3);
        }
    }

    #[test]
    fn a_cosmic_ray_is_clipped_and_does_not_lift_the_continuum() {
        let grid = LogGrid::preset(GridPreset::Specclip);
        let mut flux = vec![1.0f32; grid.npix];
        for f in &mut flux[600..604] {
            *f = 30.0;
        }
        let spec = GridSpectrum { flux, ivar: vec![400.0; grid.npix] };
        let fitter = ContinuumFitter::new(&grid, &[], ContinuumConfig::default());
        let cont = fitter.fit_continuum(&spec).unwrap();
        assert!(cont.iter().all(|c| (c - 1.0).abs() < 1e-6));
    }

    #[test]
    fn all_masked_is_an_error_not_a_spectrum() {
        let grid = LogGrid::preset(GridPreset::Specclip);
        let spec = GridSpectrum::masked(grid.npix);
        let fitter = ContinuumFitter::new(&grid, &[], ContinuumConfig::default());
        assert!(matches!(fitter.normalize_continuum(&spec), Err(ContinuumError::NoContinuum { .. })));
    }

    #[test]
    fn short_segments_merge_into_their_neighbour() {
        // The SpecCLIP window ends at 5599 Å, so a 5580 Å break would leave a ~25-pixel segment.
        let grid = LogGrid::preset(GridPreset::Specclip);
        let fitter = ContinuumFitter::new(&grid, &[5580.0], ContinuumConfig::default());
        assert_eq!(fitter.segment_count(), 1);
    }
}
