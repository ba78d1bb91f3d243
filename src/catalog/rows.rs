//! Catalogue rows: spectra metadata joined, shard by shard and row by row, with the prediction
//! shards of each head (`infer` writes `predictions-X` in the order of `spectra-X`).

use super::flags::{FATAL_MASK, Flag, ModelLimits, RowFacts, Thresholds, flags_of};
use super::sky::healpix_29;
use super::{CatalogError, Result};
use crate::artifacts::metadata::{self, PredictionsMeta};
use crate::artifacts::{ShardKind, discover, naming};
use crate::schema::columns::{catalog as cat, normalized_spectra as ns, predictions as pred};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{Float32Type, Float64Type, Int32Type, Int64Type, SchemaRef, UInt32Type};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const C_KMS: f64 = 299_792.458;
const BATCH_ROWS: usize = 8192;

/// One head: the prediction shards of one model + adapter.
#[derive(Debug, Clone)]
pub struct Head {
    pub dir: PathBuf,
    pub limits: ModelLimits,
    /// The error model the head's σ come from (scale and floor per parameter), as infer recorded it.
    pub error_model: Option<serde_json::Value>,
    /// 'mlp_pixels' or 'mlp_embedding'.
    pub model: String,
    /// The weights' and adapter's hashes, as the rows carry them (`model_hash`, `adapter_hash`).
    pub model_sha256: String,
    pub adapter_sha256: String,
    /// `model/adapter` (`mlp_pixels/full`): the `head` column, unique within a catalogue.
    pub name: String,
    /// The catalogue's default head (`is_default_head`).
    pub is_default: bool,
}

impl Head {
    /// Reads the model facts a head's shards carry in their metadata.
    pub fn open(dir: &Path) -> Result<Self> {
        let first = discover::first_shard(dir, ShardKind::Predictions)
            .map_err(|e| CatalogError::Invalid(e.to_string()))?
            .ok_or_else(|| CatalogError::bad(dir, "no predictions-*.parquet shards (run starpipe infer)"))?;
        let kv = crate::io::read_key_value_metadata(&first).map_err(|e| CatalogError::bad(&first, e))?;
        let meta = PredictionsMeta::from_key_values(&kv);
        let range: Option<serde_json::Value> = serde_json::from_str(&meta.label_range_json).ok();
        let triple = |k: &str| -> Option<[f64; 3]> {
            let a = range.as_ref()?.get(k)?.as_array()?;
            Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?, a.get(2)?.as_f64()?])
        };
        let embedding = meta.made_from_embeddings();
        let model = if embedding { "mlp_embedding" } else { "mlp_pixels" };
        let adapter = adapter_kind(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            limits: ModelLimits {
                // The threshold real stars set (`calibrate`), else the training 99.5 % one.
                ood_threshold: meta.ood_threshold.or(meta.ood_threshold_995),
                chi2_threshold: meta.chi2_threshold,
                label_p005: triple("p005"),
                label_p995: triple("p995"),
                embedding_input: embedding,
                calibrated: meta.is_calibrated(),
            },
            model: model.into(),
            error_model: serde_json::from_str(&meta.error_model_json).ok(),
            model_sha256: meta.model_sha256,
            adapter_sha256: meta.adapter_sha256,
            name: format!("{model}/{adapter}"),
            is_default: false,
        })
    }

    /// The heads of `--predictions` directories in the order given: the first is the default, and
    /// two with one name (model and adapter kind) are refused, since a query could not tell them apart.
    pub fn open_all(dirs: &[PathBuf]) -> Result<Vec<Self>> {
        let mut heads = dirs.iter().map(|d| Head::open(d)).collect::<Result<Vec<_>>>()?;
        for (i, h) in heads.iter().enumerate() {
            if let Some(other) = heads[..i].iter().find(|o| o.name == h.name) {
                return Err(CatalogError::Invalid(format!(
                    "{} and {} are both the head {}: the `head` column could not tell their rows apart; write \
                     them into separate catalogues",
                    other.dir.display(),
                    h.dir.display(),
                    h.name
                )));
            }
        }
        if let Some(first) = heads.first_mut() {
            first.is_default = true;
        }
        for h in heads.iter().filter(|h| !h.limits.calibrated) {
            tracing::warn!(
                head = %h.name,
                predictions = %h.dir.display(),
                "head without a fitted error model: its errors are uncalibrated (rows flagged UNCALIBRATED); run \
                 `starpipe calibrate` on labelled stars the model never saw, then `infer` again"
            );
        }
        Ok(heads)
    }

    /// The head's calibrated error floor per parameter (zero without one).
    pub fn error_floor(&self) -> [f64; 3] {
        let floor = |p: usize| self.error_model.as_ref().and_then(|m| m.get("floor")?.get(p)?.as_f64()).unwrap_or(0.0);
        [floor(0), floor(1), floor(2)]
    }

    fn predictions_for(&self, spectra_shard: &Path) -> PathBuf {
        self.dir.join(naming::predictions_of(spectra_shard))
    }
}

/// The adapter kind (`zeroshot`, `full`, `lora`, `reshead`) of a head: its first prediction row,
/// in whichever shard has one (a task may have predicted no spectrum).
fn adapter_kind(dir: &Path) -> Result<String> {
    let shards = discover::shard_paths(&[dir.to_path_buf()], ShardKind::Predictions)
        .map_err(|e| CatalogError::Invalid(e.to_string()))?;
    for shard in &shards {
        for b in open_projected(shard, &[pred::ADAPTER_KIND])? {
            let b = b.map_err(|e| CatalogError::arrow(shard.to_path_buf(), e))?;
            if b.num_rows() > 0 {
                return Ok(b.column(0).as_string::<i32>().value(0).to_string());
            }
        }
    }
    Err(CatalogError::bad(dir, "no prediction rows in any shard: cannot tell the head's adapter"))
}

fn open_projected<'a>(
    path: &'a Path,
    columns: &'a [&'a str],
) -> Result<impl Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + 'a> {
    let file = File::open(path).map_err(|e| CatalogError::io(path, e))?;
    crate::io::read_columns(file, columns, BATCH_ROWS).map_err(|e| {
        if e.to_string().contains("no column") {
            // Shards of an older starpipe lack the columns added since (star_id, chi2_red, …).
            CatalogError::bad(
                path,
                format!("{e}: written by an older starpipe? Re-run `ingest` and `infer` with this version"),
            )
        } else {
            CatalogError::parquet(path.to_path_buf(), e)
        }
    })
}

/// Identifier columns copied unchanged from the spectra shards into the catalogue, in catalogue
/// order (after `_healpix_29`).
pub const PASSED_IDS: [&str; 15] = [
    cat::GAIA_SOURCE_ID,
    cat::REF_ID,
    cat::REF_CAT,
    cat::GAIA_PHOT_G_MEAN_MAG,
    cat::GAIA_PHOT_BP_MEAN_MAG,
    cat::GAIA_PHOT_RP_MEAN_MAG,
    cat::DESI_SURVEY,
    cat::DESI_PROGRAM,
    cat::HEALPIX,
    cat::TILEID,
    cat::DESIGNATION,
    cat::LMJD,
    cat::PLANID,
    cat::SPID,
    cat::FIBERID,
];

const SPECTRA_COLUMNS: [&str; 18] = [
    ns::SPECTRUM_ID,
    ns::SURVEY,
    ns::RELEASE,
    ns::SOURCE_ID,
    ns::RA,
    ns::DEC,
    ns::SNR_GRID,
    ns::SNR_G,
    ns::SNR_ARM_R,
    ns::MASKED_FRACTION,
    ns::FIBER_MASK,
    ns::FIBER_STATUS,
    ns::OBJECT_CLASS,
    ns::RV_KMS,
    ns::Z_ERR,
    ns::REST_FRAME,
    ns::OBJECT_SUBCLASS,
    ns::STAR_ID,
];

/// Feeds the `_healpix_29` of every spectrum to `each_position` (the sky histogram HATS
/// partitions are cut from). Reads only the coordinates.
pub fn scan_positions(shards: &[PathBuf], mut each_position: impl FnMut(i64)) -> Result<()> {
    for shard in shards {
        for b in open_projected(shard, &[cat::RA, cat::DEC])? {
            let b = b.map_err(|e| CatalogError::arrow(shard.clone(), e))?;
            let (ra, dec) = (b.column(0).as_primitive::<Float64Type>(), b.column(1).as_primitive::<Float64Type>());
            for i in 0..b.num_rows() {
                each_position(healpix_29(ra.value(i), dec.value(i)));
            }
        }
    }
    Ok(())
}

/// Sets `is_primary` on rows sorted by `_healpix_29`: per (survey, star_id), the spectrum with
/// the highest S/N (ties to the smaller spectrum id) is primary, for every head. Repeat spectra of
/// a star share its catalogue position, so they meet in one partition and one call suffices,
/// with memory bounded by the partition.
pub fn mark_primaries(batch: &RecordBatch, path: &Path) -> Result<RecordBatch> {
    let col = |n: &str| batch.column_by_name(n).expect("catalogue schema");
    let survey = col(cat::SURVEY).as_string::<i32>();
    let src = col(cat::STAR_ID).as_string::<i32>();
    let ids = col(cat::SPECTRUM_ID).as_string::<i32>();
    let snr = col(cat::SNR).as_primitive::<Float32Type>();
    let mut best: HashMap<(&str, &str), (f32, &str)> = HashMap::new();
    for i in 0..batch.num_rows() {
        let s = if snr.is_null(i) || snr.value(i).is_nan() { f32::NEG_INFINITY } else { snr.value(i) };
        let entry = best.entry((survey.value(i), src.value(i))).or_insert((s, ids.value(i)));
        if (s, std::cmp::Reverse(ids.value(i))) > (entry.0, std::cmp::Reverse(entry.1)) {
            *entry = (s, ids.value(i));
        }
    }
    let primary = BooleanArray::from_iter(
        (0..batch.num_rows()).map(|i| Some(best[&(survey.value(i), src.value(i))].1 == ids.value(i))),
    );
    let at = batch.schema().index_of(cat::IS_PRIMARY).expect("catalogue schema");
    let mut cols = batch.columns().to_vec();
    cols[at] = Arc::new(primary);
    RecordBatch::try_new(batch.schema(), cols).map_err(|e| CatalogError::arrow(path.to_path_buf(), e))
}

/// Sets HEAD_DISAGREE where a pixel head and an embedding head of the same spectrum differ by
/// more than `disagree_sigma` combined σ in any parameter, on both rows. Rows of one spectrum are
/// adjacent once sorted (the sort keys are position, spectrum, model), so this is one scan.
pub fn mark_disagreements(batch: &RecordBatch, disagree_sigma: f64, path: &Path) -> Result<RecordBatch> {
    let col = |n: &str| batch.column_by_name(n).expect("catalogue schema");
    let ids = col(cat::SPECTRUM_ID).as_string::<i32>();
    let model = col(cat::MODEL).as_string::<i32>();
    let est: Vec<_> = [cat::TEFF, cat::TEFF_ERR, cat::LOGG, cat::LOGG_ERR, cat::FEH, cat::FEH_ERR]
        .iter()
        .map(|n| col(n).as_primitive::<Float32Type>().clone())
        .collect();
    let estimate = |i: usize| -> Option<[(f64, f64); 3]> {
        let v = |k: usize| (!est[k].is_null(i)).then(|| est[k].value(i) as f64);
        Some([(v(0)?, v(1)?), (v(2)?, v(3)?), (v(4)?, v(5)?)])
    };
    let disagree = |a: [(f64, f64); 3], b: [(f64, f64); 3]| {
        (0..3).any(|p| (a[p].0 - b[p].0).abs() > disagree_sigma * (a[p].1.powi(2) + b[p].1.powi(2)).sqrt())
    };
    let mut flags = col(super::flags::COLUMN).as_primitive::<UInt32Type>().values().to_vec();
    let n = batch.num_rows();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && ids.value(end) == ids.value(start) {
            end += 1;
        }
        let disagrees_with_a_head_of_the_other_kind = |i: usize| {
            (start..end).any(|j| {
                let kinds_differ = (model.value(i) == "mlp_embedding") != (model.value(j) == "mlp_embedding");
                kinds_differ && matches!((estimate(i), estimate(j)), (Some(a), Some(b)) if disagree(a, b))
            })
        };
        for (i, flag) in (start..end).zip(&mut flags[start..end]) {
            if disagrees_with_a_head_of_the_other_kind(i) {
                *flag |= Flag::HeadDisagree.mask();
            }
        }
        start = end;
    }
    let at = batch.schema().index_of(super::flags::COLUMN).expect("catalogue schema");
    let mut cols = batch.columns().to_vec();
    cols[at] = Arc::new(UInt32Array::from(flags));
    RecordBatch::try_new(batch.schema(), cols).map_err(|e| CatalogError::arrow(path.to_path_buf(), e))
}

/// Prediction columns of one block, aligned with the spectra block (None where missing).
struct Predicted {
    est: Vec<Option<([f64; 3], [f64; 3])>>,
    ood: Vec<Option<f64>>,
    chi2: Vec<Option<f64>>,
    adapter: Vec<String>,
    model_hash: Vec<String>,
    adapter_hash: Vec<String>,
}

/// Refuses a pixel-head prediction shard whose recorded input (the size of the spectra shard
/// `infer` read) is not that of `shard`: a shard of the same name from another ingest directory.
/// Predictions made from embeddings record their embedding shard, so only their rows are checked.
fn check_made_from(pred_path: &Path, shard: &Path) -> Result<()> {
    if !pred_path.exists() {
        return Ok(());
    }
    let kv = crate::io::read_key_value_metadata(pred_path).map_err(|e| CatalogError::bad(pred_path, e))?;
    let recorded = metadata::get(&kv, metadata::predictions::INPUT);
    let Some(recorded) = recorded.filter(|r| ShardKind::Spectra.matches_record(r)) else { return Ok(()) };
    let actual = metadata::input_record(shard).map_err(|e| CatalogError::io(shard, e))?;
    // Sizes, not names: a shard renamed together with its predictions is still the same data.
    if metadata::recorded_size(recorded) != metadata::recorded_size(&actual) {
        return Err(CatalogError::bad(
            pred_path,
            format!(
                "made from {recorded}, not from {} ({actual}): these predictions belong to other spectra (another \
                 ingest directory, or spectra re-ingested since); give --spectra the directory `infer` read, or \
                 re-run `infer` on these spectra",
                shard.display()
            ),
        ));
    }
    Ok(())
}

fn read_predictions(path: &Path) -> Result<Option<Vec<RecordBatch>>> {
    if !path.exists() {
        return Ok(None);
    }
    let cols = [
        cat::SPECTRUM_ID,
        cat::TEFF,
        pred::TEFF_ERR,
        pred::LOGG,
        pred::LOGG_ERR,
        pred::FEH,
        pred::FEH_ERR,
        pred::OOD_SCORE,
        pred::MODEL_SHA256,
        pred::ADAPTER_KIND,
        pred::ADAPTER_SHA256,
        pred::CHI2_RED,
    ];
    let batches = open_projected(path, &cols)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| CatalogError::arrow(path.to_path_buf(), e))?;
    Ok(Some(batches))
}

/// Streams the catalogue rows of one spectra shard for every head, in blocks.
#[allow(clippy::too_many_arguments)]
pub fn shard_rows(
    shard: &Path,
    heads: &[Head],
    thresholds: &Thresholds,
    schema: &SchemaRef,
    mut sink: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    for head in heads {
        let pred_path = head.predictions_for(shard);
        check_made_from(&pred_path, shard)?;
        let predicted = read_predictions(&pred_path)?;
        if predicted.is_none() {
            tracing::warn!(shard = %shard.display(), head = %head.dir.display(), "no prediction shard: rows flagged BAD_INPUT");
        }
        let mut pred_rows = predicted.iter().flatten().flat_map(|b| (0..b.num_rows()).map(move |i| (b, i)));
        let columns: Vec<&str> = SPECTRA_COLUMNS.iter().chain(&PASSED_IDS).copied().collect();
        for b in open_projected(shard, &columns)? {
            let b = b.map_err(|e| CatalogError::arrow(shard.to_path_buf(), e))?;
            let ids = b.column(0).as_string::<i32>();
            let mut p = Predicted {
                est: vec![],
                ood: vec![],
                chi2: vec![],
                adapter: vec![],
                model_hash: vec![],
                adapter_hash: vec![],
            };
            for i in 0..b.num_rows() {
                match pred_rows.next() {
                    Some((pb, j)) => {
                        let pid = pb.column(0).as_string::<i32>().value(j);
                        if pid != ids.value(i) {
                            return Err(CatalogError::bad(
                                &pred_path,
                                format!(
                                    "its rows are not those of {} ({pid} vs {}): these predictions were made from \
                                     other spectra; give --spectra the directory `infer` read, or re-run `infer`",
                                    shard.display(),
                                    ids.value(i)
                                ),
                            ));
                        }
                        let f = |c: usize| pb.column(c).as_primitive::<Float32Type>().value(j) as f64;
                        p.est.push(Some(([f(1), f(3), f(5)], [f(2), f(4), f(6)])));
                        let ood = pb.column(7).as_primitive::<Float32Type>();
                        p.ood.push((!ood.is_null(j)).then(|| ood.value(j) as f64));
                        let chi2 = pb.column(11).as_primitive::<Float32Type>();
                        p.chi2.push((!chi2.is_null(j)).then(|| chi2.value(j) as f64));
                        p.model_hash.push(pb.column(8).as_string::<i32>().value(j).to_string());
                        p.adapter.push(pb.column(9).as_string::<i32>().value(j).to_string());
                        p.adapter_hash.push(pb.column(10).as_string::<i32>().value(j).to_string());
                    }
                    None => {
                        if predicted.is_some() {
                            return Err(CatalogError::bad(&pred_path, format!("fewer rows than {}", shard.display())));
                        }
                        p.est.push(None);
                        p.ood.push(None);
                        p.chi2.push(None);
                        p.model_hash.push(String::new());
                        p.adapter.push(String::new());
                        p.adapter_hash.push(String::new());
                    }
                }
            }
            sink(build_batch(&b, &p, head, thresholds, schema, shard)?)?;
        }
        if pred_rows.next().is_some() {
            return Err(CatalogError::bad(&pred_path, format!("more rows than {}", shard.display())));
        }
    }
    Ok(())
}

fn build_batch(
    b: &RecordBatch,
    p: &Predicted,
    head: &Head,
    t: &Thresholds,
    schema: &SchemaRef,
    shard: &Path,
) -> Result<RecordBatch> {
    let n = b.num_rows();
    let s = |c: usize| b.column(c).as_string::<i32>();
    let (ids, survey, release) = (s(0), s(1), s(2));
    let src = b.column(3).as_primitive::<Int64Type>();
    let (ra, dec) = (b.column(4).as_primitive::<Float64Type>(), b.column(5).as_primitive::<Float64Type>());
    let f32c = |c: usize| b.column(c).as_primitive::<Float32Type>();
    let (snr, snr_g, snr_r, masked) = (f32c(6), f32c(7), f32c(8), f32c(9));
    // LAMOST carries its fibre mask in column 10, DESI its COADD_FIBERSTATUS in 11.
    let (lamost_fiber, desi_fiber) =
        (b.column(10).as_primitive::<Int32Type>(), b.column(11).as_primitive::<Int32Type>());
    let (class, subclass, star_id) = (s(12), s(16), s(17));
    let f64c = |c: usize| b.column(c).as_primitive::<Float64Type>();
    let (rv, z_err) = (f64c(13), f64c(14));
    let opt32 = |a: &arrow::array::PrimitiveArray<Float32Type>, i: usize| (!a.is_null(i)).then(|| a.value(i));
    let opt64 = |a: &arrow::array::PrimitiveArray<Float64Type>, i: usize| (!a.is_null(i)).then(|| a.value(i));

    let mut flags = Vec::with_capacity(n);
    let mut fiber = Vec::with_capacity(n);
    let mut snr_survey = Vec::with_capacity(n);
    let mut rv_err = Vec::with_capacity(n);
    for i in 0..n {
        let is_desi = survey.value(i) == "desi";
        let fs = if is_desi { desi_fiber } else { lamost_fiber };
        let fiber_i = (!fs.is_null(i)).then(|| fs.value(i));
        fiber.push(fiber_i);
        snr_survey.push(if is_desi { opt32(snr_r, i) } else { opt32(snr_g, i) });
        let e = opt64(z_err, i).filter(|e| e.is_finite() && *e > 0.0).map(|e| e * C_KMS);
        rv_err.push(e);
        let facts = RowFacts {
            survey: survey.value(i),
            estimate: p.est[i],
            input_class: (!class.is_null(i)).then(|| class.value(i)),
            input_subclass: (!subclass.is_null(i)).then(|| subclass.value(i)),
            rv_kms: opt64(rv, i),
            rv_err_kms: e,
            snr: opt32(snr, i).map_or(f64::NAN, |v| v as f64),
            frac_masked: opt32(masked, i).map_or(1.0, |v| v as f64),
            fiber_status: fiber_i,
            ood_score: p.ood[i],
            chi2_red: p.chi2[i],
        };
        flags.push(flags_of(&facts, &head.limits, t));
    }
    let fatal = |i: usize| flags[i] & FATAL_MASK != 0;
    let est = |k: usize, err: bool| -> ArrayRef {
        Arc::new(Float32Array::from_iter(
            (0..n).map(|i| p.est[i].filter(|_| !fatal(i)).map(|(v, e)| if err { e[k] as f32 } else { v[k] as f32 })),
        ))
    };
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(survey.clone()),
        Arc::new(release.clone()),
        Arc::new(src.clone()),
        Arc::new(ids.clone()),
        Arc::new(star_id.clone()),
        // Decided per partition once rows are sorted (mark_primaries).
        Arc::new(BooleanArray::from(vec![false; n])),
        Arc::new(ra.clone()),
        Arc::new(dec.clone()),
        Arc::new(Int64Array::from_iter_values((0..n).map(|i| healpix_29(ra.value(i), dec.value(i))))),
    ];
    // The spectra block holds PASSED_IDS right after SPECTRA_COLUMNS, in catalogue order. Strings
    // that do not apply are empty, not null: astropy's Parquet reader fails on null strings.
    cols.extend((0..PASSED_IDS.len()).map(|k| {
        let c = b.column(SPECTRA_COLUMNS.len() + k);
        match c.as_string_opt::<i32>() {
            Some(s) if s.null_count() > 0 => {
                Arc::new(StringArray::from_iter_values(s.iter().map(|v| v.unwrap_or("")))) as ArrayRef
            }
            _ => c.clone(),
        }
    }));
    cols.extend::<Vec<ArrayRef>>(vec![
        Arc::new(snr.clone()),
        Arc::new(Float32Array::from(snr_survey)),
        Arc::new(masked.clone()),
        Arc::new(Int32Array::from(fiber)),
        Arc::new(class.clone()),
        Arc::new(Float32Array::from_iter((0..n).map(|i| opt64(rv, i).map(|v| v as f32)))),
        Arc::new(Float32Array::from_iter(rv_err.iter().map(|e| e.map(|v| v as f32)))),
        est(0, false),
        est(0, true),
        est(1, false),
        est(1, true),
        est(2, false),
        est(2, true),
        Arc::new(Float32Array::from_iter(p.ood.iter().map(|o| o.map(|v| v as f32)))),
        Arc::new(Float32Array::from_iter(p.chi2.iter().map(|o| o.map(|v| v as f32)))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(head.model.as_str(), n))),
        Arc::new(StringArray::from_iter_values(p.adapter.iter())),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(head.name.as_str(), n))),
        Arc::new(BooleanArray::from(vec![head.is_default; n])),
        Arc::new(StringArray::from_iter_values(p.model_hash.iter())),
        Arc::new(StringArray::from_iter_values(p.adapter_hash.iter())),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(crate::VERSION, n))),
        Arc::new(UInt32Array::from(flags.clone())),
        Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(!fatal(i))))),
    ]);
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| CatalogError::arrow(shard.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn the_best_snr_spectrum_of_each_source_is_primary_for_every_head() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("survey", DataType::Utf8, false),
            Field::new("star_id", DataType::Utf8, false),
            Field::new("spectrum_id", DataType::Utf8, false),
            Field::new("snr", DataType::Float32, true),
            Field::new("is_primary", DataType::Boolean, false),
        ]));
        let rows = [
            ("desi", 1, "a", Some(10.0)),
            ("desi", 1, "b", Some(20.0)),
            ("desi", 1, "b", Some(20.0)), // the same spectrum under a second head
            ("desi", 1, "e", Some(20.0)), // a tie loses to the smaller id
            ("desi", 2, "c", None),
            ("lamost", 1, "d", Some(5.0)), // same number, other survey: its own source
        ];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.to_string()))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.3))),
                Arc::new(BooleanArray::from(vec![false; rows.len()])),
            ],
        )
        .unwrap();
        let marked = mark_primaries(&batch, Path::new("test")).unwrap();
        let p: Vec<bool> = marked.column(4).as_boolean().iter().map(|v| v.unwrap()).collect();
        assert_eq!(p, vec![false, true, true, false, true, true]);
    }

    #[test]
    fn pixel_and_embedding_heads_that_disagree_are_both_flagged() {
        let names = ["spectrum_id", "model", "teff", "teff_err", "logg", "logg_err", "feh", "feh_err", "quality_flags"];
        let fields: Vec<Field> = names
            .iter()
            .map(|n| match *n {
                "spectrum_id" | "model" => Field::new(*n, DataType::Utf8, false),
                "quality_flags" => Field::new(*n, DataType::UInt32, false),
                _ => Field::new(*n, DataType::Float32, true),
            })
            .collect();
        // s1: heads agree; s2: [Fe/H] differs by 0.5 with σ 0.1 each (3.5 combined σ); s3: two
        // pixel heads that disagree (same kind: not flagged); s4: the embedding row has no estimate.
        let rows: [(&str, &str, f32); 8] = [
            ("s1", "mlp_embedding", 0.0),
            ("s1", "mlp_pixels", 0.1),
            ("s2", "mlp_embedding", -1.2),
            ("s2", "mlp_pixels", -0.7),
            ("s3", "mlp_pixels", 0.0),
            ("s3", "mlp_pixels", 1.0),
            ("s4", "mlp_embedding", f32::NAN),
            ("s4", "mlp_pixels", 0.0),
        ];
        let f = |v: f32| if v.is_nan() { None } else { Some(v) };
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ];
        for (value, err) in [(5000.0, 50.0), (4.0, 0.1)] {
            cols.push(Arc::new(Float32Array::from_iter(rows.iter().map(|r| f(r.2).map(|_| value)))));
            cols.push(Arc::new(Float32Array::from_iter(rows.iter().map(|r| f(r.2).map(|_| err)))));
        }
        cols.push(Arc::new(Float32Array::from_iter(rows.iter().map(|r| f(r.2)))));
        cols.push(Arc::new(Float32Array::from_iter(rows.iter().map(|r| f(r.2).map(|_| 0.1f32)))));
        cols.push(Arc::new(UInt32Array::from(vec![0u32; rows.len()])));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let marked = mark_disagreements(&batch, 3.0, Path::new("test")).unwrap();
        let flags: Vec<u32> = marked.column(8).as_primitive::<UInt32Type>().values().to_vec();
        let bit = Flag::HeadDisagree.mask();
        assert_eq!(flags, vec![0, 0, bit, bit, 0, 0, 0, 0]);
        // Both sides of the edge: s2 is z combined σ apart; a threshold just above z keeps it
        // unflagged, just below flags it.
        let (a, b, s) = ((-1.2f32) as f64, (-0.7f32) as f64, 0.1f32 as f64);
        let z = (a - b).abs() / (2.0 * s * s).sqrt();
        for (sigma, flagged) in [(z * (1.0 + 1e-9), false), (z * (1.0 - 1e-9), true)] {
            let marked = mark_disagreements(&batch, sigma, Path::new("test")).unwrap();
            let flags = marked.column(8).as_primitive::<UInt32Type>().values().to_vec();
            assert_eq!(flags[2] & bit != 0, flagged, "disagree_sigma {sigma} around {z}");
        }
    }
}
