//! `starpipe catalog`: per-star parameters, errors and quality flags as Parquet that Polars and
//! DuckDB query directly, as a single file or a HATS directory (catalog-conventions.md).
//!
//! Three passes, none holding more than one block (or, for HATS, one partition) in memory:
//! `rows::scan_positions` fills the sky histogram the partitions are cut from; `rows::shard_rows`
//! joins each spectra shard with its prediction shards and computes the flags, spilling rows to
//! their partitions; `write` sorts each partition by `_healpix_29`, marks primaries and writes it. Everything is written into
//! `<out>.tmp/` and renamed to `<out>` at the end, so a catalogue under its final name is complete.

pub mod fits;
pub mod flags;
pub mod margin;
pub mod metadata;
pub mod per_star;
pub mod rows;
pub mod sky;
pub mod write;

use crate::io::FileError;
use rows::{Head, scan_positions, shard_rows};
use sky::Histogram;
use std::path::{Path, PathBuf};

/// What can go wrong writing a catalogue; a file's failure is `io::FileError` or `io::WriteError`,
/// which name it.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Write(#[from] crate::io::WriteError),
    #[error("{0}")]
    Invalid(String),
}

impl CatalogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File(FileError::io(path, source))
    }
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::File(FileError::bad(path, reason))
    }
    pub(crate) fn arrow(path: impl Into<PathBuf>, source: arrow::error::ArrowError) -> Self {
        Self::File(FileError::Arrow { path: path.into(), source })
    }
    pub(crate) fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        Self::File(FileError::Parquet { path: path.into(), source })
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One Parquet file, `<out>` itself (small runs: sorted in memory).
    Parquet,
    /// A HATS directory at `<out>` (any size: memory bounded by one partition).
    Hats,
    /// A FITS binary table at `<out>` with TUNITn/TUCDn/TCOMMn, for TOPCAT (small runs).
    Fits,
}

#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// Normalised-spectra shards or directories (one survey release).
    pub spectra: Vec<PathBuf>,
    /// Prediction directories from `infer`, one per head (model + adapter).
    pub predictions: Vec<PathBuf>,
    pub out: PathBuf,
    pub format: Format,
    pub thresholds: flags::Thresholds,
    /// HATS: most rows per partition.
    pub max_rows: u64,
    /// HATS: order of the sky histogram partitions are cut from (the deepest partition order).
    pub histogram_order: u8,
    /// HATS `obs_collection`.
    pub collection: String,
    /// Write the per-star table (`schemas/catalog_stars.toml`) instead of one row per spectrum.
    pub per_star: bool,
    /// HATS: the margin cache's threshold (arcsec), written beside the catalogue
    /// (`margin::margin_dir`); None for none.
    pub margin_arcsec: Option<f64>,
}

impl CatalogOptions {
    pub fn new(spectra: Vec<PathBuf>, predictions: Vec<PathBuf>, out: PathBuf, format: Format) -> Self {
        Self {
            spectra,
            predictions,
            out,
            format,
            thresholds: flags::Thresholds::default(),
            max_rows: 1_000_000,
            histogram_order: 10,
            collection: "starpipe_catalog".into(),
            per_star: false,
            margin_arcsec: Some(margin::DEFAULT_THRESHOLD_ARCSEC),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CatalogSummary {
    /// Per-spectrum rows (spectra × heads) joined and flagged.
    pub rows: u64,
    /// Rows written: `rows` for the per-spectrum catalogue, stars × heads for the per-star table.
    pub written: u64,
    pub success: u64,
    pub partitions: usize,
    /// Rows written per flag, every flag in bit order (zeros included), counted on the rows as
    /// written: after head disagreements are marked and, for the per-star table, stars combined.
    pub flag_counts: Vec<(flags::Flag, u64)>,
    /// Rows written that pass each published cut (`flags::CUTS`, in that order).
    pub cut_counts: Vec<(&'static flags::Cut, u64)>,
    /// HATS: rows in the margin cache, when one was written.
    pub margin_rows: Option<u64>,
}

/// The margin cache of the HATS catalogue being written at `tmp` (to be renamed to `opts.out`),
/// written and renamed into place beside it first: a run killed between the two renames leaves a
/// margin the re-run replaces.
fn write_margin_beside(
    opts: &CatalogOptions,
    tmp: &Path,
    parts: &[sky::Partition],
    schema: &arrow::datatypes::SchemaRef,
    kv: &[(String, String)],
    arcsec: f64,
) -> Result<u64> {
    let dir = margin::margin_dir(&opts.out, arcsec);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let primary = opts.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_any(&crate::io::tmp_path(&dir))?;
    crate::io::write_atomically(&dir, |mtmp| {
        let rows = margin::write_margin(mtmp, &name, &primary, tmp, parts, schema, kv, arcsec)?;
        remove_any(&dir)?;
        Ok(rows)
    })
}

fn quality_flags(batch: &arrow::array::RecordBatch) -> &arrow::array::UInt32Array {
    use arrow::array::AsArray;
    batch.column_by_name(flags::COLUMN).expect("catalogue schema").as_primitive::<arrow::datatypes::UInt32Type>()
}

/// Per-spectrum rows as joined, before sorting.
fn tally_spectra(summary: &mut CatalogSummary, batch: &arrow::array::RecordBatch) {
    for v in quality_flags(batch).values() {
        summary.rows += 1;
        if v & flags::FATAL_MASK == 0 {
            summary.success += 1;
        }
    }
}

/// The longest value of each string column, in characters (what fixed-width readers count).
fn measure_strings(widths: &mut metadata::StringWidths, batch: &arrow::array::RecordBatch) {
    use arrow::array::AsArray;
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let Some(strings) = column.as_string_opt::<i32>() {
            let longest = strings.iter().flatten().map(|v| v.chars().count()).max().unwrap_or(0);
            let w = widths.entry(field.name().clone()).or_insert(0);
            *w = (*w).max(longest);
        }
    }
}

/// The flags of rows as they go into the file.
fn tally_flags(summary: &mut CatalogSummary, batch: &arrow::array::RecordBatch) {
    if summary.flag_counts.is_empty() {
        summary.flag_counts = flags::ALL.iter().map(|f| (*f, 0)).collect();
        summary.cut_counts = flags::CUTS.iter().map(|c| (c, 0)).collect();
    }
    for &v in quality_flags(batch).values() {
        for (c, n) in summary.cut_counts.iter_mut() {
            *n += u64::from(c.passes(v));
        }
        for (f, n) in summary.flag_counts.iter_mut() {
            if v & f.mask() != 0 {
                *n += 1;
            }
        }
    }
}

/// A head's prediction shard is found by its spectra shard's name, and each `--predictions`
/// directory is one head; two ingests write the same names, so their shards cannot be told apart.
fn refuse_same_shard_names(shards: &[std::path::PathBuf]) -> Result<()> {
    let mut seen: std::collections::HashMap<&std::ffi::OsStr, &std::path::Path> = std::collections::HashMap::new();
    for s in shards {
        let Some(name) = s.file_name() else { continue };
        if let Some(first) = seen.insert(name, s) {
            return Err(CatalogError::Invalid(format!(
                "{} and {} have the same name: spectra from two ingests cannot go into one catalogue, since each \
                 --predictions directory is one head (a model) and predictions are matched to spectra by shard \
                 name. Ingest all the files into one --out (with --shard i/N tasks for parallelism) and run infer \
                 on it, or write one catalogue per ingest",
                first.display(),
                s.display()
            )));
        }
    }
    Ok(())
}

pub fn run_catalog(opts: &CatalogOptions) -> Result<CatalogSummary> {
    let shards = crate::artifacts::discover::shard_paths(&opts.spectra, crate::artifacts::ShardKind::Spectra)
        .map_err(|e| CatalogError::Invalid(e.to_string()))?;
    if opts.predictions.is_empty() {
        return Err(CatalogError::Invalid("give at least one --predictions directory".into()));
    }
    refuse_same_shard_names(&shards)?;
    let heads = Head::open_all(&opts.predictions)?;
    let table = if opts.per_star { crate::schema::catalog_stars() } else { crate::schema::catalog() };
    // The file's key-values (written into the Arrow schema's metadata too, `write`) need every
    // string's width: made once the rows are joined.
    let key_values = |widths: &metadata::StringWidths| metadata::key_values(&table, &opts.thresholds, &heads, widths);
    // Rows are joined and flagged per spectrum; the per-star table combines them per partition.
    let schema = crate::schema::catalog().to_arrow(0);
    let out_schema = table.to_arrow(0);
    let output = if opts.per_star {
        let floors =
            heads.iter().map(|h| ((h.model_sha256.clone(), h.adapter_sha256.clone()), h.error_floor())).collect();
        write::Table::Stars { schema: out_schema.clone(), floors }
    } else {
        write::Table::Spectra
    };
    let mut hist = Histogram::new(opts.histogram_order);
    tracing::info!(shards = shards.len(), heads = heads.len(), "scanning spectra for primaries and sky coverage");
    // Every spectrum gives one row per head, all at its position.
    scan_positions(&shards, |h| hist.add(h, heads.len() as u64))?;
    if let Some(parent) = opts.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CatalogError::io(parent, e))?;
    }
    // A killed run may have left a temporary catalogue (a HATS directory is not overwritten).
    remove_any(&crate::io::tmp_path(&opts.out))?;
    crate::io::write_atomically(&opts.out, |tmp| {
        let mut summary = CatalogSummary::default();
        let mut widths = metadata::StringWidths::new();
        match opts.format {
            Format::Parquet | Format::Fits => {
                let mut batches = Vec::new();
                for shard in &shards {
                    shard_rows(shard, &heads, &opts.thresholds, &schema, |b| {
                        tally_spectra(&mut summary, &b);
                        measure_strings(&mut widths, &b);
                        batches.push(b);
                        Ok(())
                    })?;
                }
                let kv = key_values(&widths);
                if opts.format == Format::Parquet {
                    let mut seen = |b: &arrow::array::RecordBatch| tally_flags(&mut summary, b);
                    let sigma = opts.thresholds.disagree_sigma;
                    summary.written = write::write_sorted(tmp, &schema, batches, sigma, &output, &kv, &mut seen)?;
                } else {
                    let sorted = write::sorted_rows(&schema, batches, opts.thresholds.disagree_sigma, &output, tmp)?;
                    tally_flags(&mut summary, &sorted);
                    summary.written = sorted.num_rows() as u64;
                    fits::write_fits(tmp, &sorted, &table, &opts.thresholds)?;
                }
                summary.partitions = 1;
            }
            Format::Hats => {
                let mut spill = write::Spill::new(&tmp.join("spill"), &hist, opts.max_rows, schema.clone())?;
                for shard in &shards {
                    shard_rows(shard, &heads, &opts.thresholds, &schema, |b| {
                        tally_spectra(&mut summary, &b);
                        measure_strings(&mut widths, &b);
                        spill.push(&b)
                    })?;
                }
                let kv = key_values(&widths);
                let parts = spill.partitions().to_vec();
                let mut seen = |b: &arrow::array::RecordBatch| tally_flags(&mut summary, b);
                let leaves = spill.write_leaves(tmp, opts.thresholds.disagree_sigma, &output, &kv, &mut seen)?;
                std::fs::remove_dir_all(tmp.join("spill")).map_err(|e| CatalogError::io(tmp, e))?;
                summary.written = leaves.iter().map(|(_, md)| md.file_metadata().num_rows() as u64).sum();
                write::write_common_metadata(&tmp.join("dataset/_common_metadata"), &out_schema, &kv)?;
                write::write_metadata(&tmp.join("dataset/_metadata"), &leaves)?;
                let dataset =
                    write::Dataset::Object { collection: &opts.collection, max_rows: opts.max_rows, table: &output };
                write::write_hats_index(tmp, &parts, summary.written, &dataset)?;
                summary.partitions = parts.len();
                if let Some(arcsec) = opts.margin_arcsec {
                    summary.margin_rows = Some(write_margin_beside(opts, tmp, &parts, &out_schema, &kv, arcsec)?);
                }
            }
        }
        // A rename does not replace a directory (HATS), nor a file by a directory.
        remove_any(&opts.out)?;
        Ok(summary)
    })
}

fn remove_any(p: &Path) -> Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else if p.exists() {
        std::fs::remove_file(p)
    } else {
        Ok(())
    };
    r.map_err(|e| CatalogError::io(p, e))
}
