//! Normalised-spectra and embedding shards → blocks of features, for every network that reads
//! them (the MLPs in `model`, the encoder in `encoder`).
//!
//! A model sees a fixed window of the common grid (absolute LAMOST pixel indices, recorded in its
//! card), so shards written on any wider window feed it unchanged. The input of pixel k is
//! `clamp(flux − 1, −1, 1)` where the pixel is usable and 0 (continuum) where `ivar == 0`: masked
//! pixels carry no information either way, and the clamp keeps cosmic rays and unmasked artefacts
//! from dominating the first layer.

use super::{FileError, Result};
use crate::artifacts::metadata::{self, EmbeddingsMeta};
use crate::grid::LogGrid;
use crate::schema::columns::{embeddings as emb, normalized_spectra as ns};
use arrow::array::{Array, AsArray, FixedSizeListArray, RecordBatch};
use arrow::datatypes::{Float32Type, Int64Type};
use std::fs::File;
use std::path::Path;

/// Rows read from a shard at a time: bounds memory whatever the shard size.
pub const READ_BATCH_ROWS: usize = 2048;

/// The grid a shard was written on (its `starpipe.grid` metadata).
pub fn shard_grid(path: &Path) -> Result<LogGrid> {
    let kv = crate::io::read_key_value_metadata(path).map_err(|e| FileError::bad(path, e))?;
    let json = metadata::get(&kv, metadata::spectra::GRID)
        .ok_or_else(|| FileError::bad(path, "no starpipe.grid metadata: not a normalised-spectra shard"))?;
    serde_json::from_str(json).map_err(|e| FileError::Json { path: path.to_path_buf(), source: e })
}

fn same_sampling(a: &LogGrid, b: &LogGrid) -> bool {
    (a.log10_lambda0 - b.log10_lambda0).abs() < 1e-12 && (a.dlog10_lambda - b.dlog10_lambda).abs() < 1e-15
}

/// Where `window` starts inside `grid`, if the grid covers it on the same sampling.
pub fn window_offset(grid: &LogGrid, window: &LogGrid) -> Option<usize> {
    (same_sampling(grid, window) && window.start >= grid.start && window.start + window.npix <= grid.start + grid.npix)
        .then(|| window.start - grid.start)
}

/// Why a shard's grid cannot feed a model's window, in Å (pixel indices aside).
pub fn uncovered(grid: &LogGrid, window: &LogGrid) -> String {
    let span = |g: &LogGrid| format!("{:.1}-{:.1} Å", g.first_angstrom(), g.last_angstrom());
    if !same_sampling(grid, window) {
        return format!(
            "the shard's grid ({}, Δlog10 λ = {:e}) is sampled differently from the model's window ({}, Δlog10 λ = {:e}): \
             re-ingest with the model's grid",
            span(grid),
            grid.dlog10_lambda,
            span(window),
            window.dlog10_lambda
        );
    }
    let mut short = Vec::new();
    if grid.start > window.start {
        short.push(format!(
            "starts at {:.1} Å, after the window's {:.1} Å",
            grid.first_angstrom(),
            window.first_angstrom()
        ));
    }
    if grid.start + grid.npix < window.start + window.npix {
        short.push(format!(
            "ends at {:.1} Å, before the window's {:.1} Å",
            grid.last_angstrom(),
            window.last_angstrom()
        ));
    }
    format!(
        "the shard's grid ({}) does not cover the model's window ({}): it {}; re-ingest with a grid that covers the window",
        span(grid),
        span(window),
        short.join(" and ")
    )
}

/// One model input from one spectrum (see the module docs).
pub fn pixel_features(flux: &[f32], ivar: &[f32], out: &mut [f32]) {
    for ((o, &f), &w) in out.iter_mut().zip(flux).zip(ivar) {
        *o = if w > 0.0 && f.is_finite() { (f - 1.0).clamp(-1.0, 1.0) } else { 0.0 };
    }
}

/// A block of spectra: identity columns plus a row-major feature matrix.
#[derive(Debug, Default, Clone)]
pub struct SpectraBatch {
    pub spectrum_id: Vec<String>,
    pub survey: Vec<String>,
    pub source_id: Vec<i64>,
    /// Median per-pixel S/N on the grid (`snr_grid`).
    pub snr: Vec<f32>,
    /// rows × n_features, row-major.
    pub features: Vec<f32>,
    pub n_features: usize,
    /// Pixel inputs: the window's normalised flux and ivar (rows × n_features), for the
    /// reconstruction check; empty for embeddings.
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
}

impl SpectraBatch {
    pub fn len(&self) -> usize {
        self.spectrum_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.spectrum_id.is_empty()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }
}

/// Whether a block also carries the window's normalised flux and ivar: only the reconstruction
/// check needs them, and training would copy them for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawPixels {
    Keep,
    Drop,
}

/// Streams a shard in blocks of at most `batch_rows` rows, turning the pixels of `window` into
/// features. Memory is bounded by one block.
pub fn for_each_batch<E: From<FileError>>(
    path: &Path,
    window: &LogGrid,
    batch_rows: usize,
    raw: RawPixels,
    mut f: impl FnMut(SpectraBatch) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let grid = shard_grid(path)?;
    let offset = window_offset(&grid, window).ok_or_else(|| FileError::bad(path, uncovered(&grid, window)))?;
    let file = File::open(path).map_err(|e| FileError::io(path, e))?;
    let columns = [ns::SPECTRUM_ID, ns::SURVEY, ns::SOURCE_ID, ns::SNR_GRID, ns::FLUX, ns::IVAR];
    let reader = crate::io::read_columns(file, &columns, batch_rows)
        .map_err(|e| FileError::Parquet { path: path.to_path_buf(), source: e })?;
    for batch in reader {
        let batch = batch.map_err(|e| FileError::Arrow { path: path.to_path_buf(), source: e })?;
        f(decode_batch(path, &batch, grid.npix, offset, window.npix, raw)?)?;
    }
    Ok(())
}

fn decode_batch(
    path: &Path,
    b: &RecordBatch,
    npix: usize,
    offset: usize,
    n: usize,
    raw: RawPixels,
) -> Result<SpectraBatch> {
    let col = |name: &str| b.column_by_name(name).ok_or_else(|| FileError::bad(path, format!("no column {name}")));
    let strings = |name: &str| -> Result<Vec<String>> {
        Ok(col(name)?.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect())
    };
    let list = |name: &str| -> Result<&FixedSizeListArray> {
        let a = col(name)?
            .as_fixed_size_list_opt()
            .ok_or_else(|| FileError::bad(path, format!("{name} is not a fixed-size list")))?;
        if a.value_length() as usize != npix {
            return Err(FileError::bad(path, format!("{name} has {} pixels, grid says {npix}", a.value_length())));
        }
        Ok(a)
    };
    let flux_list = list(ns::FLUX)?;
    let ivar_list = list(ns::IVAR)?;
    let flux = flux_list.values().as_primitive::<Float32Type>().values();
    let ivar = ivar_list.values().as_primitive::<Float32Type>().values();
    let rows = b.num_rows();
    let mut features = vec![0f32; rows * n];
    let (mut window_flux, mut window_ivar) = (Vec::new(), Vec::new());
    for r in 0..rows {
        let at = (flux_list.offset() + r) * npix + offset;
        pixel_features(&flux[at..at + n], &ivar[at..at + n], &mut features[r * n..(r + 1) * n]);
        if raw == RawPixels::Keep {
            window_flux.extend_from_slice(&flux[at..at + n]);
            window_ivar.extend_from_slice(&ivar[at..at + n]);
        }
    }
    Ok(SpectraBatch {
        spectrum_id: strings(ns::SPECTRUM_ID)?,
        survey: strings(ns::SURVEY)?,
        source_id: col(ns::SOURCE_ID)?.as_primitive::<Int64Type>().values().to_vec(),
        snr: col(ns::SNR_GRID)?.as_primitive::<Float32Type>().iter().map(|v| v.unwrap_or(f32::NAN)).collect(),
        features,
        n_features: n,
        flux: window_flux,
        ivar: window_ivar,
    })
}

/// The encoder hash and width an embedding shard records.
pub fn embedding_shard_info(path: &Path) -> Result<(String, usize)> {
    let kv = crate::io::read_key_value_metadata(path).map_err(|e| FileError::bad(path, e))?;
    match EmbeddingsMeta::from_key_values(&kv) {
        Some(meta) => Ok((meta.encoder_sha256, meta.dim)),
        None if metadata::get(&kv, metadata::embeddings::ENCODER_SHA256).is_none() => {
            Err(FileError::bad(path, "not an embedding shard"))
        }
        None => Err(FileError::bad(path, "no embedding width")),
    }
}

pub fn for_each_embedding_batch<E: From<FileError>>(
    path: &Path,
    encoder_sha256: &str,
    dim: usize,
    mean: &[f64],
    std: &[f64],
    batch_rows: usize,
    mut f: impl FnMut(SpectraBatch) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let (sha, d) = embedding_shard_info(path)?;
    if sha != encoder_sha256 || d != dim {
        return Err(FileError::bad(
            path,
            format!("embeddings of encoder {sha} (width {d}); the model reads encoder {encoder_sha256} (width {dim})"),
        )
        .into());
    }
    let file = File::open(path).map_err(|e| FileError::io(path, e))?;
    let columns = [ns::SPECTRUM_ID, ns::SURVEY, ns::SOURCE_ID, ns::SNR_GRID, emb::EMBEDDING];
    let reader = crate::io::read_columns(file, &columns, batch_rows)
        .map_err(|e| FileError::Parquet { path: path.to_path_buf(), source: e })?;
    for b in reader {
        let b = b.map_err(|e| FileError::Arrow { path: path.to_path_buf(), source: e })?;
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| FileError::bad(path, format!("no column {name}")));
        let list = col(emb::EMBEDDING)?
            .as_fixed_size_list_opt()
            .ok_or_else(|| FileError::bad(path, "embedding is not a list"))?;
        let values = list.values().as_primitive::<Float32Type>().values();
        let start = list.offset() * dim;
        let features: Vec<f32> = values[start..start + b.num_rows() * dim]
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v as f64 - mean[i % dim]) / std[i % dim]) as f32)
            .collect();
        f(SpectraBatch {
            spectrum_id: col(ns::SPECTRUM_ID)?
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect(),
            survey: col(ns::SURVEY)?.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect(),
            source_id: col(ns::SOURCE_ID)?.as_primitive::<Int64Type>().values().to_vec(),
            snr: col(ns::SNR_GRID)?.as_primitive::<Float32Type>().iter().map(|v| v.unwrap_or(f32::NAN)).collect(),
            features,
            n_features: dim,
            flux: Vec::new(),
            ivar: Vec::new(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod input_rule_tests {
    use super::*;

    #[test]
    fn pixels_become_clamped_excess_over_the_continuum_and_masked_ones_zero() {
        let flux = [1.0, 1.5, 0.2, 3.0, -4.0, 1.3, f32::NAN];
        let ivar = [4.0, 4.0, 4.0, 4.0, 4.0, 0.0, 4.0];
        let mut out = [9.0f32; 7];
        pixel_features(&flux, &ivar, &mut out);
        assert_eq!(out, [0.0, 0.5, -0.8, 1.0, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_window_is_found_only_on_the_same_sampling_and_only_when_covered() {
        let full = LogGrid::preset(crate::grid::GridPreset::Lamost);
        let window = LogGrid::preset(crate::grid::GridPreset::Specclip);
        assert_eq!(window_offset(&full, &window), Some(window.start - full.start));
        assert_eq!(window_offset(&window, &full), None, "a narrower grid does not cover a wider window");
        let mut other = full;
        other.dlog10_lambda *= 1.5;
        assert_eq!(window_offset(&other, &window), None, "another sampling is refused");
        // Each end on its own: a grid one pixel short of the window at either end does not cover it.
        let (start, end) = (window.start, window.start + window.npix);
        let grid = |from: usize, to: usize| LogGrid::lamost_window(from, to - from);
        assert_eq!(window_offset(&grid(start, end), &window), Some(0), "exactly the window");
        assert_eq!(window_offset(&grid(start - 5, end), &window), Some(5));
        assert_eq!(window_offset(&grid(start + 1, end + 50), &window), None, "starts one pixel late");
        assert_eq!(window_offset(&grid(start - 50, end - 1), &window), None, "ends one pixel early");
    }

    #[test]
    fn a_grid_that_does_not_cover_the_window_is_named_in_angstrom() {
        let window = LogGrid::preset(crate::grid::GridPreset::Specclip);
        let short = LogGrid::lamost_window(window.start, window.npix - 10);
        let msg = uncovered(&short, &window);
        assert!(msg.contains('Å') && msg.contains(&format!("{:.1}", window.last_angstrom())), "{msg}");
        assert!(msg.contains("ends") && !msg.contains("starts"), "{msg}");
    }
}
