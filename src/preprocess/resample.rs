//! Flux-conserving resampling onto the output grid with inverse-variance propagation.
//!
//! Each output pixel gets the mean flux density of the input pixels it overlaps, weighted by the
//! overlap length; only usable input pixels (ivar > 0) contribute. An output pixel is usable only
//! when usable input pixels cover at least `min_coverage` of its width, so gaps, masked regions and
//! the ends of an arm stay masked instead of being filled from a neighbour.
//!
//! Variance propagates as a noise density: var_out = Σ oₖ·Δₖ·σₖ² / (Σ oₖ)², with oₖ the overlap
//! and Δₖ the width of input pixel k. Treating the inputs of neighbouring output pixels as
//! independent (Σ oₖ²σₖ²) would ignore that they share input pixels, and would make the ivar of a
//! spectrum depend on its radial velocity (a half-pixel shift would double it). The density form
//! keeps ivar per unit wavelength unchanged: it does not vary with sub-pixel shifts, and coarser
//! output pixels gain ivar in proportion to their width.

use crate::spectrum::{Arm, GridSpectrum};

/// Boundaries of the input pixels: midpoints between centres, the outer two extrapolated by half a pixel.
pub fn pixel_edges(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    if n == 1 {
        // A single pixel has no width to infer; give it zero width so it contributes nothing.
        return vec![centres[0], centres[0]];
    }
    let mut edges = vec![0.0; n + 1];
    edges[0] = centres[0] - 0.5 * (centres[1] - centres[0]);
    for (e, pair) in edges[1..n].iter_mut().zip(centres.windows(2)) {
        *e = 0.5 * (pair[0] + pair[1]);
    }
    edges[n] = centres[n - 1] + 0.5 * (centres[n - 1] - centres[n - 2]);
    edges
}

/// Resamples `arm` onto the pixels bounded by `grid_edges` (increasing, npix + 1 values), both in
/// the same frame.
pub fn resample(arm: &Arm, grid_edges: &[f64], min_coverage: f64) -> GridSpectrum {
    resample_to_rest_frame(arm, grid_edges, 0.0, min_coverage)
}

/// As [`resample`], for an arm observed at redshift `z` onto a rest-frame grid. The grid's edges
/// go to the observed frame (× (1 + z)) rather than the arm's pixels to the rest frame, so the
/// arm's wavelengths, shared by every spectrum of a file, are neither copied nor rewritten. Nothing
/// else depends on the frame: the flux is a mean weighted by overlaps, the ivar a ratio of squared
/// lengths, and the coverage a ratio of lengths, all unchanged when every length scales by 1 + z.
pub fn resample_to_rest_frame(arm: &Arm, grid_edges: &[f64], z: f64, min_coverage: f64) -> GridSpectrum {
    let mut out = GridSpectrum::masked(grid_edges.len().saturating_sub(1));
    sweep_to_rest_frame(arm, grid_edges, z, min_coverage, |j, flux, ivar| {
        out.flux[j] = flux;
        out.ivar[j] = ivar;
    });
    out
}

/// The resampling itself: calls `emit(j, flux, ivar)` for every output pixel `j` the arm covers
/// well enough, in increasing `j`; the others are left to the caller (masked).
pub(crate) fn sweep_to_rest_frame(
    arm: &Arm,
    grid_edges: &[f64],
    z: f64,
    min_coverage: f64,
    mut emit: impl FnMut(usize, f32, f32),
) {
    let npix = grid_edges.len().saturating_sub(1);
    if arm.is_empty() || npix == 0 {
        return;
    }
    let doppler = 1.0 + z;
    let in_edges = pixel_edges(&arm.wavelength);
    let nin = arm.len();
    // Only output pixels the arm can overlap: an arm covers part of a multi-arm grid.
    let first = grid_edges.partition_point(|&e| e * doppler <= in_edges[0]).saturating_sub(1);
    let last = grid_edges.partition_point(|&e| e * doppler < in_edges[nin]).min(npix);
    if first >= last {
        return; // the arm does not reach the grid
    }
    // The input pixels those output pixels can overlap (an arm may reach well past the grid).
    let mut hi = grid_edges[first] * doppler;
    let k_first = in_edges[1..].partition_point(|&e| e <= hi);
    let k_end = in_edges.partition_point(|&e| e < grid_edges[last] * doppler).clamp(k_first, nin);
    // Each of their variances times its width (0 where masked), once: an input pixel overlaps one
    // or two output pixels, and the division is the loop's most expensive step.
    let mut var_width = vec![0.0f64; nin];
    let widths = in_edges[k_first..=k_end].windows(2).map(|e| e[1] - e[0]);
    for ((vw, &iv), width) in var_width[k_first..k_end].iter_mut().zip(&arm.ivar[k_first..k_end]).zip(widths) {
        // Branch-free (a masked pixel divides by 1 and is zeroed), so the divisions vectorise.
        let usable = iv > 0.0;
        let quotient = width / if usable { iv as f64 } else { 1.0 };
        *vw = if usable { quotient } else { 0.0 };
    }
    // Two-pointer sweep: `k` is the first input pixel that can still overlap output pixel `j`.
    let mut k = k_first;
    for j in first..last {
        let lo = hi;
        hi = grid_edges[j + 1] * doppler;
        while k < nin && in_edges[k + 1] <= lo {
            k += 1;
        }
        let (mut sw, mut swf, mut sw2v) = (0.0f64, 0.0f64, 0.0f64);
        let mut kk = k;
        while kk < nin && in_edges[kk] < hi {
            // Plain comparisons, not f64::min/max: edges are never NaN, and the NaN handling of
            // those costs several instructions per overlap in this, the innermost loop.
            let (right, left) = (in_edges[kk + 1], in_edges[kk]);
            let overlap = if right < hi { right } else { hi } - if left > lo { left } else { lo };
            if overlap > 0.0 && var_width[kk] > 0.0 {
                sw += overlap;
                swf += overlap * arm.flux[kk] as f64;
                sw2v += overlap * var_width[kk];
            }
            kk += 1;
        }
        if sw >= min_coverage * (hi - lo) && sw2v > 0.0 {
            emit(j, (swf / sw) as f32, (sw * sw / sw2v) as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::LogGrid;

    fn linear_arm(start: f64, step: f64, n: usize, f: impl Fn(f64) -> f32) -> Arm {
        let wavelength: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
        let flux = wavelength.iter().map(|&w| f(w)).collect();
        Arm {
            name: "b".into(),
            wavelength: wavelength.into(),
            flux,
            ivar: vec![4.0; n],
            mask: vec![],
            lsf_fwhm_angstrom: None,
        }
    }

    #[test]
    fn constant_flux_stays_constant_and_ivar_grows_with_pixels_combined() {
        // 0.8 Å input pixels onto ~1.1–1.3 Å log pixels: each output averages ~1.5 inputs,
        // so its ivar must exceed one input's ivar (4.0).
        let arm = linear_arm(4000.0, 0.8, 2000, |_| 2.5);
        let grid = LogGrid::lamost_between(4100.0, 5400.0).unwrap();
        let out = resample(&arm, &grid.edges(), 0.5);
        assert!(out.ivar.iter().all(|&v| v > 4.0), "ivar not propagated");
        assert!(out.flux.iter().all(|&f| (f - 2.5).abs() < 1e-6));
    }

    #[test]
    fn integrated_flux_is_conserved() {
        let arm = linear_arm(4000.0, 0.8, 3000, |w| (1.0 + 0.3 * ((w / 17.0).sin())) as f32);
        let grid = LogGrid::lamost_between(4050.0, 6300.0).unwrap();
        let edges = grid.edges();
        let out = resample(&arm, &edges, 0.5);
        let integral_out: f64 = (0..grid.npix).map(|j| out.flux[j] as f64 * (edges[j + 1] - edges[j])).sum();
        let (lo, hi) = (edges[0], edges[grid.npix]);
        let in_edges = pixel_edges(&arm.wavelength);
        let integral_in: f64 =
            (0..arm.len()).map(|k| arm.flux[k] as f64 * (in_edges[k + 1].min(hi) - in_edges[k].max(lo)).max(0.0)).sum();
        assert!((integral_out / integral_in - 1.0).abs() < 1e-6, "{integral_out} vs {integral_in}");
    }

    #[test]
    fn masked_input_and_uncovered_pixels_are_masked_in_output() {
        let mut arm = linear_arm(4000.0, 0.8, 1000, |_| 1.0);
        for i in 400..420 {
            arm.ivar[i] = 0.0;
        }
        let grid = LogGrid::lamost_between(3900.0, 4900.0).unwrap();
        let out = resample(&arm, &grid.edges(), 0.5);
        let w = grid.wavelengths();
        for (j, &wj) in w.iter().enumerate() {
            if wj < 3999.0 || (wj > 4321.0 && wj < 4335.0) || wj > 4800.0 {
                assert_eq!(out.ivar[j], 0.0, "pixel at {wj} should be masked");
            }
            if wj > 4010.0 && wj < 4300.0 {
                assert!(out.ivar[j] > 0.0);
            }
        }
    }

    #[test]
    fn ivar_does_not_depend_on_sub_pixel_shifts() {
        let grid = LogGrid::lamost_window(100, 400);
        let shifted = |z: f64| {
            let wavelength: Vec<f64> = grid.wavelengths().iter().map(|w| w * (1.0 + z)).collect();
            let n = wavelength.len();
            let arm = Arm {
                name: "lrs".into(),
                wavelength: wavelength.into(),
                flux: vec![1.0; n],
                ivar: vec![1.0; n],
                mask: vec![],
                lsf_fwhm_angstrom: None,
            };
            let out = resample(&arm, &grid.edges(), 0.5);
            out.ivar[50..350].iter().map(|&v| v as f64).sum::<f64>() / 300.0
        };
        let half_pixel = 0.5 * (10f64.powf(1e-4) - 1.0);
        let (none, half) = (shifted(0.0), shifted(half_pixel));
        assert!((half / none - 1.0).abs() < 0.01, "mean ivar {half} after a half-pixel shift vs {none}");
    }

    #[test]
    fn resampling_to_the_rest_frame_equals_resampling_a_shifted_arm() {
        let z = 173.0 / crate::preprocess::C_KMS;
        let mut arm = linear_arm(3600.0, 0.8, 2751, |w| (1.0 + 0.3 * ((w / 13.0).sin())) as f32);
        for k in (100..2751).step_by(97) {
            arm.ivar[k] = 0.0;
        }
        let grid = LogGrid::lamost_between(3700.0, 5700.0).unwrap();
        let ours = resample_to_rest_frame(&arm, &grid.edges(), z, 0.5);
        let mut shifted = arm.clone();
        crate::preprocess::shift_to_rest_frame(&mut shifted, z);
        let reference = resample(&shifted, &grid.edges(), 0.5);
        assert_eq!(ours.ivar.iter().filter(|v| **v > 0.0).count(), reference.ivar.iter().filter(|v| **v > 0.0).count());
        for j in 0..grid.npix {
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs().max(1e-6);
            assert!(close(ours.flux[j], reference.flux[j]), "{j}: flux {} vs {}", ours.flux[j], reference.flux[j]);
            assert!(close(ours.ivar[j], reference.ivar[j]), "{j}: ivar {} vs {}", ours.ivar[j], reference.ivar[j]);
        }
        // The shift is real: without it the spectrum lands 173 km/s off.
        let unshifted = resample(&arm, &grid.edges(), 0.5);
        assert!(unshifted.flux.iter().zip(&reference.flux).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn an_arm_beside_the_grid_leaves_it_masked() {
        let grid = LogGrid::lamost_between(4000.0, 5000.0).unwrap();
        for start in [2000.0, 6000.0] {
            let arm = linear_arm(start, 0.8, 500, |_| 1.0);
            for z in [0.0, 1e-3] {
                let out = resample_to_rest_frame(&arm, &grid.edges(), z, 0.5);
                assert!(out.ivar.iter().all(|v| *v == 0.0), "arm from {start} Å, z {z}");
            }
        }
    }

    /// The definition, pair by pair: every input pixel's overlap with every output pixel.
    fn resample_by_overlaps(arm: &Arm, grid_edges: &[f64], z: f64, min_coverage: f64) -> GridSpectrum {
        let npix = grid_edges.len() - 1;
        let mut out = GridSpectrum::masked(npix);
        let e = pixel_edges(&arm.wavelength);
        for j in 0..npix {
            let (lo, hi) = (grid_edges[j] * (1.0 + z), grid_edges[j + 1] * (1.0 + z));
            let (mut sw, mut swf, mut sw2v) = (0.0, 0.0, 0.0);
            for k in 0..arm.len() {
                let overlap = e[k + 1].min(hi) - e[k].max(lo);
                if overlap > 0.0 && arm.ivar[k] > 0.0 {
                    sw += overlap;
                    swf += overlap * arm.flux[k] as f64;
                    sw2v += overlap * (e[k + 1] - e[k]) / arm.ivar[k] as f64;
                }
            }
            if sw >= min_coverage * (hi - lo) && sw2v > 0.0 {
                out.flux[j] = (swf / sw) as f32;
                out.ivar[j] = (sw * sw / sw2v) as f32;
            }
        }
        out
    }

    #[test]
    fn the_sweep_equals_the_pairwise_overlap_sums() {
        let grid = LogGrid::lamost_between(3700.0, 6000.0).unwrap();
        let edges = grid.edges();
        // DESI-like linear pixels and LAMOST-like log pixels, reaching past the grid on one side
        // or ending inside it; masked runs, isolated masked pixels, a NaN flux under a mask.
        let linear = (3600.0, 0.8, 2751);
        let log: Vec<f64> = (0..3000).map(|i| 10f64.powf(3.59 + 1e-4 * i as f64)).collect();
        for (case, wavelength) in [
            (0, (0..linear.2).map(|i| linear.0 + linear.1 * i as f64).collect::<Vec<f64>>()),
            (1, log),
            (2, (0..900).map(|i| 5200.0 + 0.8 * i as f64).collect()),
        ] {
            let n = wavelength.len();
            let flux: Vec<f32> = (0..n).map(|i| (1.0 + 0.3 * (i as f64 / 7.3).sin()) as f32).collect();
            let mut ivar: Vec<f32> = (0..n).map(|i| 2.0 + (i % 5) as f32).collect();
            ivar[300..340].fill(0.0);
            for k in (50..n).step_by(61) {
                ivar[k] = 0.0;
            }
            let mut flux = flux;
            flux[310] = f32::NAN;
            let arm = Arm {
                name: "x".into(),
                wavelength: wavelength.into(),
                flux,
                ivar,
                mask: vec![],
                lsf_fwhm_angstrom: None,
            };
            for z in [0.0, 2.1e-4, -7.7e-4] {
                let ours = resample_to_rest_frame(&arm, &edges, z, 0.5);
                let reference = resample_by_overlaps(&arm, &edges, z, 0.5);
                let usable = |g: &GridSpectrum| g.ivar.iter().filter(|v| **v > 0.0).count();
                assert!(usable(&reference) > 300, "case {case}: the test must cover pixels");
                for j in 0..grid.npix {
                    let close = |a: f32, b: f32| (a - b).abs() <= 2e-6 * b.abs();
                    assert_eq!(ours.ivar[j] > 0.0, reference.ivar[j] > 0.0, "case {case}, z {z}, pixel {j}");
                    if reference.ivar[j] > 0.0 {
                        assert!(
                            close(ours.flux[j], reference.flux[j]),
                            "case {case} {j}: {} vs {}",
                            ours.flux[j],
                            reference.flux[j]
                        );
                        assert!(
                            close(ours.ivar[j], reference.ivar[j]),
                            "case {case} {j}: {} vs {}",
                            ours.ivar[j],
                            reference.ivar[j]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn identical_grids_copy_pixels() {
        let grid = LogGrid::lamost_window(0, 50);
        let arm = Arm {
            name: "lrs".into(),
            wavelength: grid.wavelengths().into(),
            flux: (0..50).map(|i| i as f32).collect(),
            ivar: vec![1.0; 50],
            mask: vec![],
            lsf_fwhm_angstrom: None,
        };
        let out = resample(&arm, &grid.edges(), 0.5);
        // The first and last pixels extrapolate their outer edge linearly, not in log; allow that.
        for j in 1..49 {
            assert!((out.flux[j] - j as f32).abs() < 1e-3, "{j}: {}", out.flux[j]);
            assert!((out.ivar[j] - 1.0).abs() < 1e-3);
        }
    }
}
