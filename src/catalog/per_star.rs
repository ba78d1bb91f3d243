//! The per-star table (`catalog --per-star`, `schemas/catalog_stars.toml`): the rows of one star
//! and head in the per-spectrum catalogue combined into one.
//!
//! It works on the rows of one partition after they are sorted and marked (primaries, head
//! disagreements): every spectrum of a star shares the star's position, so a star never spans two
//! partitions and memory stays bounded by the partition.

use super::flags::{FATAL_MASK, Flag, cut};
use super::{CatalogError, Result};
use crate::schema::columns::{catalog as cat, catalog_stars as cs};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int32Array, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Float32Type, SchemaRef, UInt32Type};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The calibrated error floor of each head, by (model hash, adapter hash): the part of σ a star's
/// spectra share, which does not average down.
pub type Floors = HashMap<(String, String), [f64; 3]>;

const PARAMS: [&str; 3] = [cs::TEFF, cs::LOGG, cs::FEH];

/// One star's combined estimate of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combined {
    pub value: f64,
    pub err: f64,
    /// Standard deviation between the spectra (None for fewer than two).
    pub scatter: Option<f64>,
}

/// Inverse-variance mean of `(value, σ)` pairs whose σ share `floor` in quadrature: the error
/// keeps the floor whole and averages the rest, `√(1/Σ 1/(σᵢ² − floor²) + floor²)`.
pub fn combine(values: &[(f64, f64)], floor: f64) -> Option<Combined> {
    if values.is_empty() {
        return None;
    }
    let w: Vec<f64> = values.iter().map(|(_, s)| 1.0 / (s * s).max(f64::MIN_POSITIVE)).collect();
    let sw: f64 = w.iter().sum();
    let value = values.iter().zip(&w).map(|((v, _), w)| v * w).sum::<f64>() / sw;
    // The independent part of each σ; a σ at (or, by rounding, under) the floor is nearly all
    // shared and contributes a tiny independent part, not a division by zero.
    let independent: f64 =
        values.iter().map(|(_, s)| 1.0 / (s * s - floor * floor).max(1e-6 * s * s).max(f64::MIN_POSITIVE)).sum();
    let err = (1.0 / independent + floor * floor).sqrt();
    let scatter = (values.len() >= 2).then(|| {
        let mean = values.iter().map(|(v, _)| v).sum::<f64>() / values.len() as f64;
        (values.iter().map(|(v, _)| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
    });
    Some(Combined { value, err, scatter })
}

/// One row per (survey, star_id, model, model hash, adapter hash) of `batch` (per-spectrum
/// catalogue rows), in the order of the per-spectrum catalogue (by the best spectrum's
/// `_healpix_29`, then star and head).
pub fn combine_stars(
    batch: &RecordBatch,
    schema: &SchemaRef,
    floors: &Floors,
    disagree_sigma: f64,
    path: &Path,
) -> Result<RecordBatch> {
    let col = |n: &str| batch.column_by_name(n).expect("catalogue schema");
    let s = |n: &str| col(n).as_string::<i32>();
    let (survey, star, model, model_hash, adapter_hash) =
        (s(cs::SURVEY), s(cs::STAR_ID), s(cs::MODEL), s(cs::MODEL_HASH), s(cs::ADAPTER_HASH));
    let primary = col(cat::IS_PRIMARY).as_boolean();
    let f32c = |n: &str| col(n).as_primitive::<Float32Type>();
    let snr = f32c(cs::SNR);
    let flags = col(super::flags::COLUMN).as_primitive::<UInt32Type>();
    let est: Vec<_> = PARAMS.iter().map(|p| (f32c(p), f32c(&format!("{p}_err")))).collect();

    // Stars in order of first appearance: rows are sorted by position, so this is the order of the
    // best spectrum's position for all but stars whose spectra have different positions.
    let mut order: Vec<(&str, &str, &str, &str, &str)> = Vec::new();
    let mut members: HashMap<(&str, &str, &str, &str, &str), Vec<usize>> = HashMap::new();
    for i in 0..batch.num_rows() {
        let key = (survey.value(i), star.value(i), model.value(i), model_hash.value(i), adapter_hash.value(i));
        members
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(i);
    }
    let snr_of = |i: usize| if snr.is_null(i) || snr.value(i).is_nan() { f32::NEG_INFINITY } else { snr.value(i) };
    let success = |i: usize| flags.value(i) & FATAL_MASK == 0;
    let ids = s(cat::SPECTRUM_ID);
    let mut best = Vec::with_capacity(order.len());
    let mut rows: Vec<StarRow> = Vec::with_capacity(order.len());
    for key in &order {
        let m = &members[key];
        // The best spectrum is the one mark_primaries chose.
        let b = *m.iter().find(|&&i| primary.value(i)).expect("every star has a primary row");
        let good: Vec<usize> = m.iter().copied().filter(|&i| cut("basic").passes(flags.value(i))).collect();
        let used: Vec<usize> = if !good.is_empty() {
            good
        } else if success(b) {
            // No good spectrum: the best one alone, its flags saying why.
            vec![b]
        } else {
            // The best failed: the best successful one, if any (is_primary's rule: S/N, then id).
            m.iter()
                .copied()
                .filter(|&i| success(i))
                .max_by(|&i, &j| snr_of(i).total_cmp(&snr_of(j)).then_with(|| ids.value(j).cmp(ids.value(i))))
                .into_iter()
                .collect()
        };
        let floor = floors.get(&(key.3.to_string(), key.4.to_string())).copied().unwrap_or([0.0; 3]);
        let mut combined = [None; 3];
        let mut star_flags = if used.is_empty() { flags.value(b) } else { 0 };
        for &i in &used {
            star_flags |= flags.value(i);
        }
        for (p, (v, e)) in est.iter().enumerate() {
            let values: Vec<(f64, f64)> = used
                .iter()
                .filter(|&&i| !v.is_null(i) && !e.is_null(i))
                .map(|&i| (v.value(i) as f64, e.value(i) as f64))
                .collect();
            combined[p] = combine(&values, floor[p]);
            if let Some(c) = combined[p]
                && values.len() >= 2
                && values.iter().any(|(x, sx)| (x - c.value).abs() > disagree_sigma * sx)
            {
                star_flags |= Flag::RepeatsDisagree.mask();
            }
        }
        let snr_combined = (!used.is_empty())
            .then(|| used.iter().map(|&i| (snr_of(i).max(0.0) as f64).powi(2)).sum::<f64>().sqrt() as f32);
        best.push(b as u32);
        rows.push(StarRow {
            n_spectra: m.len() as i32,
            n_used: used.len() as i32,
            snr_combined,
            combined,
            flags: star_flags,
            success: combined.iter().any(Option::is_some),
        });
    }
    let best = arrow::array::UInt32Array::from(best);
    let err = |e: arrow::error::ArrowError| CatalogError::arrow(path.to_path_buf(), e);
    let from_best = |name: &str| -> Result<ArrayRef> { take(col(name).as_ref(), &best, None).map_err(err) };
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            let name = f.name().as_str();
            let param = |p: usize, what: fn(&Combined) -> Option<f64>| -> ArrayRef {
                Arc::new(Float32Array::from_iter(
                    rows.iter().map(|r| r.combined[p].as_ref().and_then(what).map(|v| v as f32)),
                ))
            };
            Ok(match name {
                cs::SOURCE_ID
                | cs::SURVEY
                | cs::RELEASE
                | cs::STAR_ID
                | cs::RA
                | cs::DEC
                | cs::_HEALPIX_29
                | cs::GAIA_SOURCE_ID
                | cs::REF_ID
                | cs::REF_CAT
                | cs::GAIA_PHOT_G_MEAN_MAG
                | cs::GAIA_PHOT_BP_MEAN_MAG
                | cs::GAIA_PHOT_RP_MEAN_MAG
                | cs::DESIGNATION
                | cs::SNR
                | cs::MODEL
                | cs::ADAPTER
                | cs::HEAD
                | cs::IS_DEFAULT_HEAD
                | cs::MODEL_HASH
                | cs::ADAPTER_HASH
                | cs::PIPELINE_VERSION => from_best(name)?,
                cs::BEST_SPECTRUM_ID => from_best(cat::SPECTRUM_ID)?,
                cs::N_SPECTRA => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.n_spectra))),
                cs::N_USED => Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.n_used))),
                cs::SNR_COMBINED => Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.snr_combined))),
                super::flags::COLUMN => Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.flags))),
                cs::SUCCESS => Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.success)))),
                other => {
                    let (p, kind) = PARAMS
                        .iter()
                        .enumerate()
                        .find_map(|(p, n)| other.strip_prefix(n).map(|rest| (p, rest)))
                        .unwrap_or_else(|| panic!("column '{other}' of schemas/catalog_stars.toml has no writer"));
                    match kind {
                        "" => param(p, |c| Some(c.value)),
                        "_err" => param(p, |c| Some(c.err)),
                        "_scatter" => param(p, |c| c.scatter),
                        _ => panic!("column '{other}' of schemas/catalog_stars.toml has no writer"),
                    }
                }
            })
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(schema.clone(), cols).map_err(err)
}

struct StarRow {
    n_spectra: i32,
    n_used: i32,
    snr_combined: Option<f32>,
    combined: [Option<Combined>; 3],
    flags: u32,
    success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_of_repeats_averages_the_independent_error_and_keeps_the_floor() {
        // Two spectra with σ = 50 (floor 30, independent 40 each): the mean's error is
        // √(40²/2 + 30²) = √1700 ≈ 41.2, not 50/√2 ≈ 35.4.
        let c = combine(&[(5000.0, 50.0), (5100.0, 50.0)], 30.0).unwrap();
        assert!((c.value - 5050.0).abs() < 1e-9);
        assert!((c.err - 1700f64.sqrt()).abs() < 1e-9, "{}", c.err);
        assert!((c.scatter.unwrap() - 100.0 / 2f64.sqrt()).abs() < 1e-9);
        // Without a floor it is the plain inverse-variance mean; weights follow 1/σ².
        let c = combine(&[(1.0, 0.1), (2.0, 0.2)], 0.0).unwrap();
        assert!((c.value - (1.0 * 100.0 + 2.0 * 25.0) / 125.0).abs() < 1e-12);
        assert!((c.err - (1.0f64 / 125.0).sqrt()).abs() < 1e-12);
        // One spectrum: its own value and σ, no scatter.
        let c = combine(&[(4.2, 0.3)], 0.1).unwrap();
        assert!((c.value - 4.2).abs() < 1e-12 && (c.err - 0.3).abs() < 1e-9 && c.scatter.is_none());
        assert!(combine(&[], 0.0).is_none());
    }
}
