//! The acceptance test of the continuum normalisation (shared docs/science.md §4): the normalised
//! flux of one real star must not depend on its S/N. A running-quantile continuum — what we must
//! not use — fails the same comparison, which shows the test can tell.

use crate::common::*;
use starpipe::grid::{GridPreset, LogGrid};
use starpipe::ingest::lamost::read_lamost;
use starpipe::preprocess::{ContinuumConfig, ContinuumFitter, LAMOST_SEGMENT_BREAKS, mask_bad_pixels, resample, shift_to_rest_frame};
use starpipe::spectrum::GridSpectrum;

/// The DR7 G3 star at SNRG 154, on the grid, as the noiseless "truth".
fn truth(grid: &LogGrid) -> GridSpectrum {
    let mut s = read_lamost(&data("real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits"), "x").unwrap();
    mask_bad_pixels(&mut s.arm);
    shift_to_rest_frame(&mut s.arm, s.meta.z.unwrap());
    resample(&s.arm, &grid.edges(), 0.5)
}

/// Mean over realisations of the normalised flux at S/N `snr`, using `normalise`.
fn mean_normalised(
    truth: &GridSpectrum,
    snr: f64,
    realisations: usize,
    seed: u64,
    normalise: &dyn Fn(&GridSpectrum) -> Vec<f32>,
) -> Vec<f64> {
    let good: Vec<f32> = truth.flux.iter().zip(&truth.ivar).filter(|(_, iv)| **iv > 0.0).map(|(f, _)| *f).collect();
    let median = {
        let mut g = good.clone();
        g.sort_by(f32::total_cmp);
        g[g.len() / 2] as f64
    };
    let mut rng = Gaussian::new(seed);
    let mut sum = vec![0.0f64; truth.flux.len()];
    for _ in 0..realisations {
        let mut noisy = GridSpectrum::masked(truth.flux.len());
        for j in 0..truth.flux.len() {
            if truth.ivar[j] > 0.0 {
                let sigma = (truth.flux[j] as f64).abs().max(0.1 * median) / snr;
                noisy.flux[j] = (truth.flux[j] as f64 + sigma * rng.sample()) as f32;
                noisy.ivar[j] = (1.0 / (sigma * sigma)) as f32;
            }
        }
        for (s, f) in sum.iter_mut().zip(normalise(&noisy)) {
            *s += f as f64;
        }
    }
    sum.iter().map(|s| s / realisations as f64).collect()
}

/// Largest |difference| of 100-pixel block means over pixels where the truth has data.
fn worst_block_bias(a: &[f64], b: &[f64], truth: &GridSpectrum) -> f64 {
    let idx: Vec<usize> = (0..a.len()).filter(|&j| truth.ivar[j] > 0.0).collect();
    idx.chunks(100)
        .map(|c| (c.iter().map(|&j| a[j] - b[j]).sum::<f64>() / c.len() as f64).abs())
        .fold(0.0, f64::max)
}

#[test]
fn normalised_flux_is_unbiased_between_snr_5_and_100() {
    let grid = LogGrid::preset(GridPreset::Lamost);
    let t = truth(&grid);
    let fitter = ContinuumFitter::new(&grid, LAMOST_SEGMENT_BREAKS, ContinuumConfig::default());
    let normalise = |s: &GridSpectrum| fitter.normalize_continuum(s).unwrap().flux;
    let low = mean_normalised(&t, 5.0, 120, 1, &normalise);
    let high = mean_normalised(&t, 100.0, 20, 2, &normalise);
    let overall: f64 = {
        let idx: Vec<usize> = (0..low.len()).filter(|&j| t.ivar[j] > 0.0).collect();
        idx.iter().map(|&j| low[j] - high[j]).sum::<f64>() / idx.len() as f64
    };
    let worst = worst_block_bias(&low, &high, &t);
    // S/N 5 noise averaged over 120 realisations and 100 pixels is ~0.002 per block.
    assert!(overall.abs() < 0.003, "mean normalised flux differs by {overall:.4} between S/N 5 and 100");
    assert!(worst < 0.012, "a 100-pixel block differs by {worst:.4} between S/N 5 and 100");
}

#[test]
fn a_running_quantile_continuum_fails_the_same_test() {
    let grid = LogGrid::preset(GridPreset::Lamost);
    let t = truth(&grid);
    let running_quantile = |s: &GridSpectrum| -> Vec<f32> {
        let n = s.flux.len();
        (0..n)
            .map(|j| {
                let mut w: Vec<f32> = (j.saturating_sub(75)..(j + 76).min(n)).filter(|&k| s.ivar[k] > 0.0).map(|k| s.flux[k]).collect();
                if w.is_empty() || s.ivar[j] == 0.0 {
                    return 1.0;
                }
                w.sort_by(f32::total_cmp);
                s.flux[j] / w[(w.len() * 9) / 10]
            })
            .collect()
    };
    let low = mean_normalised(&t, 5.0, 10, 3, &running_quantile);
    let high = mean_normalised(&t, 100.0, 4, 4, &running_quantile);
    assert!(worst_block_bias(&low, &high, &t) > 0.05, "the control estimator should be visibly biased");
}
