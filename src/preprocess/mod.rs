//! From native arms to one normalised spectrum on the output grid.
//!
//! Order matters and is fixed here: mask → (degrade) → resample each arm to the rest frame →
//! combine arms → normalise the continuum. Masking first means every later step only reads `ivar`;
//! degrading before the Doppler shift convolves in the observed frame, where the LSF is defined.

mod combine;
mod continuum;
mod degrade;
mod mask;
mod resample;
mod restframe;

pub use combine::{combine_arms, resample_and_combine};
pub use continuum::{
    ContinuumConfig, ContinuumError, ContinuumFitter, DESI_SEGMENT_BREAKS, LAMOST_SEGMENT_BREAKS, LINE_WINDOWS_ANGSTROM,
};
pub use degrade::degrade_resolution;
pub use mask::{all_flux_non_finite, mask_bad_pixels};
pub use resample::{pixel_edges, resample, resample_to_rest_frame};
pub use restframe::{C_KMS, shift_to_rest_frame};

use crate::grid::LogGrid;
use crate::spectrum::{Arm, GridSpectrum};
use serde::{Deserialize, Serialize};

/// Every knob of preprocessing. It is recorded in each shard's metadata and in the resume
/// fingerprint, so shards made with different settings never mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub grid: LogGrid,
    /// Shift to the rest frame with the survey's redshift.
    pub rest_frame: bool,
    /// Convolve arms with a known LSF down to this resolving power before resampling.
    pub degrade_to_r: Option<f64>,
    /// Fraction of an output pixel that usable input pixels must cover.
    pub min_coverage: f64,
    /// Spectra with more masked grid pixels than this are skipped.
    pub max_masked_fraction: f32,
    pub continuum: ContinuumConfig,
}

impl PreprocessConfig {
    pub fn new(grid: LogGrid) -> Self {
        Self {
            grid,
            rest_frame: true,
            degrade_to_r: None,
            min_coverage: 0.5,
            max_masked_fraction: 0.5,
            continuum: ContinuumConfig::default(),
        }
    }
}

/// Why a spectrum did not make it onto the grid. These are per-spectrum outcomes, not errors of the run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("flux is NaN or infinite in every pixel")]
    AllFluxNonFinite,
    #[error("no usable pixel (ivar > 0, mask == 0) in the input")]
    NoUsablePixels,
    #[error("no usable pixel falls on the output grid ({lo:.1}-{hi:.1} Å)")]
    NoGridOverlap { lo: f64, hi: f64 },
    #[error("masked fraction {fraction:.3} on the grid exceeds {max:.3}")]
    TooMasked { fraction: f32, max: f32 },
    #[error("continuum fit failed: {0}")]
    Continuum(#[from] ContinuumError),
}

/// A spectrum ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Continuum-normalised flux and its ivar on the grid.
    pub spectrum: GridSpectrum,
    /// Median per-pixel S/N on the grid before normalisation.
    pub snr_grid: f32,
    /// Fraction of grid pixels with ivar = 0.
    pub masked_fraction: f32,
    /// Whether the rest-frame shift was applied (false without a redshift or when disabled).
    pub rest_frame_applied: bool,
}

/// Applies [`PreprocessConfig`] to spectra of one survey. Build once, share across threads.
pub struct Preprocessor {
    config: PreprocessConfig,
    grid_edges: Vec<f64>,
    fitter: ContinuumFitter,
}

impl Preprocessor {
    pub fn new(config: PreprocessConfig, segment_breaks_angstrom: &[f64]) -> Self {
        let fitter = ContinuumFitter::new(&config.grid, segment_breaks_angstrom, config.continuum);
        Self { grid_edges: config.grid.edges(), fitter, config }
    }

    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// Runs every step on the arms of one spectrum; `z` is the survey redshift, if any.
    pub fn preprocess(&self, mut arms: Vec<Arm>, z: Option<f64>) -> Result<Prepared, Rejection> {
        if arms.iter().all(|a| all_flux_non_finite(&a.flux)) {
            return Err(Rejection::AllFluxNonFinite);
        }
        for arm in &mut arms {
            mask_bad_pixels(arm);
        }
        if arms.iter().all(|a| a.good_fraction() == 0.0) {
            return Err(Rejection::NoUsablePixels);
        }
        if let Some(r) = self.config.degrade_to_r {
            for arm in &mut arms {
                degrade_resolution(arm, r);
            }
        }
        let z = z.filter(|_| self.config.rest_frame);
        let rest_frame_applied = z.is_some();
        let (z, coverage) = (z.unwrap_or(0.0), self.config.min_coverage);
        let combined = match arms.as_slice() {
            [arm] => resample_to_rest_frame(arm, &self.grid_edges, z, coverage),
            arms => resample_and_combine(arms, &self.grid_edges, z, coverage),
        };
        let masked_fraction = combined.masked_fraction();
        if masked_fraction >= 1.0 {
            let g = &self.config.grid;
            return Err(Rejection::NoGridOverlap { lo: g.first_angstrom(), hi: g.last_angstrom() });
        }
        if masked_fraction > self.config.max_masked_fraction {
            return Err(Rejection::TooMasked { fraction: masked_fraction, max: self.config.max_masked_fraction });
        }
        let snr_grid = combined.median_snr();
        let spectrum = self.fitter.normalize_continuum(&combined)?;
        let masked_fraction = spectrum.masked_fraction();
        Ok(Prepared { spectrum, snr_grid, masked_fraction, rest_frame_applied })
    }
}
