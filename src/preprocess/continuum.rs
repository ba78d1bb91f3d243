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
    /// Column-major [degree+1][pixel]: each Chebyshev polynomial over the segment's pixels.
    basis: Vec<f64>,
    /// Column-major [nb·(nb+1)/2][pixel]: basis_p·basis_q (p ≤ q) per pixel, so each entry of the
    /// normal matrix of any weighting is one dot product with the weights.
    products: Vec<f64>,
}

impl Segment {
    fn len(&self) -> usize {
        self.pixels.len()
    }

    fn basis_column(&self, k: usize) -> &[f64] {
        &self.basis[k * self.len()..(k + 1) * self.len()]
    }

    fn product_column(&self, k: usize) -> &[f64] {
        &self.products[k * self.len()..(k + 1) * self.len()]
    }
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
        assert!((1..=7).contains(&nb), "continuum degree {} outside 0..=6", config.degree);
        let segments = bounds
            .windows(2)
            .map(|b| {
                let n = b[1] - b[0];
                let mut basis = vec![0.0; n * nb];
                let mut row = vec![0.0; nb];
                for i in 0..n {
                    let x = if n > 1 { 2.0 * i as f64 / (n - 1) as f64 - 1.0 } else { 0.0 };
                    chebyshev_row(x, &mut row);
                    for (k, v) in row.iter().enumerate() {
                        basis[k * n + i] = *v;
                    }
                }
                let column = |k: usize| &basis[k * n..(k + 1) * n];
                let products = (0..nb)
                    .flat_map(|p| (p..nb).map(move |q| (p, q)))
                    .flat_map(|(p, q)| column(p).iter().zip(column(q)).map(|(a, b)| a * b))
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
        let mut continuum = vec![0.0f64; self.npix];
        let mut any = false;
        for seg in &self.segments {
            let px = seg.pixels.clone();
            any |= fit_segment(
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
        let (sum, count) = cont.iter().filter(|c| **c > 0.0).fold((0.0f64, 0usize), |(s, n), c| (s + c, n + 1));
        let floor = if count == 0 { f64::INFINITY } else { 1e-3 * sum / count as f64 };
        let mut out = GridSpectrum { flux: vec![0.0; self.npix], ivar: vec![0.0; self.npix] };
        let pixels = out.flux.iter_mut().zip(out.ivar.iter_mut()).zip(spec.flux.iter().zip(&spec.ivar)).zip(&cont);
        for (((flux, ivar), (&f, &iv)), &c) in pixels {
            // Branch-free, so the divisions vectorise: a pixel that cannot be normalised divides by 1
            // and is then overwritten.
            let usable = iv > 0.0 && c > floor;
            let c = if usable { c } else { 1.0 };
            let (f, iv) = ((f as f64 / c) as f32, (iv as f64 * c * c) as f32);
            *flux = if usable { f } else { 1.0 };
            *ivar = if usable { iv } else { 0.0 };
        }
        if out.ivar.iter().all(|&v| v == 0.0) {
            return Err(ContinuumError::NoContinuum { needed: 4 * (self.config.degree + 1) });
        }
        Ok(out)
    }
}

/// Fits one segment, writing the continuum into `out`; false (and `out` untouched) when the segment
/// has too few usable continuum pixels.
fn fit_segment(
    seg: &Segment,
    flux: &[f32],
    ivar: &[f32],
    is_continuum: &[bool],
    config: &ContinuumConfig,
    out: &mut [f64],
) -> bool {
    let (n, nb) = (seg.len(), config.degree + 1);
    let needed = 4 * nb;
    let clip2 = config.clip_sigma * config.clip_sigma;
    // Fit weight per pixel: ivar on continuum pixels still in the fit, 0 otherwise.
    let mut weight: Vec<f64> =
        ivar.iter().zip(is_continuum).map(|(&iv, &cont)| if cont && iv > 0.0 { iv as f64 } else { 0.0 }).collect();
    let mut used = weight.iter().filter(|&&w| w > 0.0).count();
    let weighted_flux: Vec<f64> = weight.iter().zip(flux).map(|(w, &f)| w * f as f64).collect();
    // Normal equations, one dot product per entry: packed upper triangle of Σ w·b·bᵀ, and Σ w·f·b.
    // Masked pixels have w = 0 and add nothing.
    let mut upper: Vec<f64> = (0..nb * (nb + 1) / 2).map(|k| dot(&weight, seg.product_column(k))).collect();
    let mut rhs: Vec<f64> = (0..nb).map(|k| dot(&weighted_flux, seg.basis_column(k))).collect();
    let mut fitted = false;
    for iteration in 0..config.max_iterations {
        // Too few pixels left after clipping: keep the last fit rather than lose the segment.
        if used < needed {
            break;
        }
        let Some(c) = solve_upper(&upper, &rhs, nb) else { break };
        // The continuum everywhere (the result if nothing is clipped): one pass per polynomial.
        out.fill(0.0);
        for (k, ck) in c.iter().enumerate() {
            for (o, b) in out.iter_mut().zip(seg.basis_column(k)) {
                *o += b * ck;
            }
        }
        fitted = true;
        if iteration + 1 == config.max_iterations {
            break; // every clip is followed by a refit; none is left
        }
        // Clipping removes few pixels: find whether any goes with one branch-free pass, then take
        // their terms out of the sums instead of re-summing.
        let clips = |w: f64, model: f64, f: f32| {
            let excess = f as f64 - model;
            let floor = config.clip_relative_floor * model;
            // excess² > clip²·(1/w + (floor·model)²), multiplied through by w (never true for w = 0).
            (excess > 0.0) & (excess * excess * w > clip2 * (1.0 + w * floor * floor))
        };
        let to_clip = weight.iter().zip(out.iter()).zip(flux).filter(|((w, m), f)| clips(**w, **m, **f)).count();
        if to_clip == 0 {
            break;
        }
        let mut removed = 0;
        for i in 0..n {
            let w = weight[i];
            if w == 0.0 {
                continue;
            }
            let f = flux[i] as f64;
            if clips(w, out[i], flux[i]) {
                for (k, u) in upper.iter_mut().enumerate() {
                    *u -= w * seg.products[k * n + i];
                }
                for (k, r) in rhs.iter_mut().enumerate() {
                    *r -= w * f * seg.basis[k * n + i];
                }
                weight[i] = 0.0;
                removed += 1;
            }
        }
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

/// Σ a·b in a fixed order: eight running sums (a single running sum is a chain of additions the
/// compiler may not reorder; eight fill the vector units), combined in the same order on every
/// machine, so results do not depend on which implementation ran.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let whole = a.len() / 8 * 8;
    let tail: f64 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    #[cfg(target_arch = "x86_64")]
    let body = {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; every load reads 2 values below `whole` ≤ len.
        unsafe {
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc = [_mm_setzero_pd(); 4];
            for i in (0..whole).step_by(8) {
                for (l, s) in acc.iter_mut().enumerate() {
                    let x = _mm_loadu_pd(pa.add(i + 2 * l));
                    let y = _mm_loadu_pd(pb.add(i + 2 * l));
                    *s = _mm_add_pd(*s, _mm_mul_pd(x, y));
                }
            }
            let v = _mm_add_pd(_mm_add_pd(acc[0], acc[1]), _mm_add_pd(acc[2], acc[3]));
            let mut lanes = [0.0f64; 2];
            _mm_storeu_pd(lanes.as_mut_ptr(), v);
            lanes[0] + lanes[1]
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let body = dot_portable(&a[..whole], &b[..whole]);
    body + tail
}

/// The body of [`dot`] (lengths a multiple of 8) without intrinsics, summed in the same order.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn dot_portable(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    ((acc[0] + acc[2]) + (acc[4] + acc[6])) + ((acc[1] + acc[3]) + (acc[5] + acc[7]))
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
    fn the_fit_is_the_weighted_least_squares_solution() {
        // Noisy flux, uneven ivar and masked runs: no pixel is clipped (the deviations stay within
        // the relative floor), so the fit must be the plain weighted least-squares polynomial.
        let grid = LogGrid::preset(GridPreset::Specclip);
        let n = grid.npix;
        let flux: Vec<f32> = (0..n)
            .map(|i| (1.5 + 0.2 * ((i as f64) / 97.0).sin() + 0.05 * ((i * 7919 % 13) as f64 - 6.0) / 6.0) as f32)
            .collect();
        let ivar: Vec<f32> =
            (0..n).map(|i| if (300..340).contains(&i) || i % 53 == 0 { 0.0 } else { 50.0 + (i % 11) as f32 }).collect();
        let spec = GridSpectrum { flux: flux.clone(), ivar: ivar.clone() };
        let config = ContinuumConfig::default();
        let fitter = ContinuumFitter::new(&grid, &[], config);
        let ours = fitter.fit_continuum(&spec).unwrap();
        // Reference without the code under test: the weighted least-squares polynomial is the one
        // polynomial of the fit's degree whose weighted residuals are orthogonal to every power of
        // x. (1) The fit is such a polynomial: Lagrange interpolation through degree + 1 of its
        // values (at Chebyshev nodes) reproduces all the others. (2) Its residuals are orthogonal
        // to 1, x, …, x^degree.
        let degree = config.degree;
        let x = |i: usize| 2.0 * i as f64 / (n - 1) as f64 - 1.0;
        let nodes: Vec<usize> = (0..=degree)
            .map(|k| {
                let t = (std::f64::consts::PI * (k as f64 + 0.5) / (degree + 1) as f64).cos();
                ((t + 1.0) / 2.0 * (n - 1) as f64).round() as usize
            })
            .collect();
        let lagrange = |xi: f64| -> f64 {
            nodes
                .iter()
                .map(|&a| {
                    let basis: f64 = nodes.iter().filter(|&&b| b != a).map(|&b| (xi - x(b)) / (x(a) - x(b))).product();
                    ours[a] * basis
                })
                .sum()
        };
        for (i, fitted) in ours.iter().enumerate() {
            assert!((lagrange(x(i)) / fitted - 1.0).abs() < 1e-9, "{i}: the fit is not a degree-{degree} polynomial");
        }
        for k in 0..=degree as i32 {
            let (mut dot, mut size) = (0.0f64, 0.0f64);
            for i in 0..n {
                let w = if fitter.is_continuum_pixel[i] && ivar[i] > 0.0 { ivar[i] as f64 } else { 0.0 };
                dot += w * (flux[i] as f64 - ours[i]) * x(i).powi(k);
                size += w * (flux[i] as f64).abs() * x(i).abs().powi(k);
            }
            assert!(dot.abs() < 1e-9 * size, "residuals not orthogonal to x^{k}: {dot} against {size}");
        }
    }

    #[test]
    fn dot_products_agree_bit_for_bit_across_implementations() {
        let a: Vec<f64> = (0..1464).map(|i| ((i * 37 % 101) as f64 - 50.0) * 1.37e-3).collect();
        let b: Vec<f64> = (0..1464).map(|i| 1.0 / (1.0 + i as f64)).collect();
        assert_eq!(dot(&a, &b).to_bits(), dot_portable(&a, &b).to_bits());
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-12 * naive.abs().max(1.0));
        assert_eq!(dot(&a[..13], &b[..13]), dot_portable(&a[..8], &b[..8]) + (8..13).map(|i| a[i] * b[i]).sum::<f64>());
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
