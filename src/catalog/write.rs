//! Writing catalogue files: sorted Parquet leaves, HATS directories, FITS tables.

use super::sky::{Histogram, Partition, partition_of, sort_partitions};
use super::{CatalogError, Result};
use crate::schema::columns::{catalog as cat, catalog_stars as cs};
use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{Int64Type, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per Parquet row group in catalogue files (a few MB of scalar columns).
const ROW_GROUP_ROWS: usize = 131_072;

fn props(kv: &[(String, String)]) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(kv.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect()))
        .build()
}

fn arrow_err(path: &Path) -> impl Fn(arrow::error::ArrowError) -> CatalogError + '_ {
    move |e| CatalogError::arrow(path.to_path_buf(), e)
}

fn pq_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> CatalogError + '_ {
    move |e| CatalogError::parquet(path.to_path_buf(), e)
}

/// Rows in the catalogue order: by `_healpix_29`, then spectrum and head, so the bytes do not
/// depend on the order in which inputs were read.
pub fn sort_rows(batch: &RecordBatch, path: &Path) -> Result<RecordBatch> {
    let col = |n: &str| batch.column_by_name(n).expect("catalogue schema").clone();
    let keys = [cat::_HEALPIX_29, cat::SPECTRUM_ID, cat::MODEL, cat::ADAPTER_HASH]
        .iter()
        .map(|n| SortColumn { values: col(n), options: None })
        .collect::<Vec<_>>();
    let idx = lexsort_to_indices(&keys, None).map_err(arrow_err(path))?;
    take_record_batch(batch, &idx).map_err(arrow_err(path))
}

/// Which table a catalogue file holds.
#[derive(Debug, Clone)]
pub enum Table {
    /// One row per spectrum and head (`schemas/catalog.toml`).
    Spectra,
    /// One row per star and head (`schemas/catalog_stars.toml`), with each head's error floor.
    Stars { schema: SchemaRef, floors: super::per_star::Floors },
}

/// The rows of a file of `table` from per-spectrum rows: in catalogue order with primaries and
/// head disagreements marked, then combined per star for the per-star table. Peak memory is two
/// copies of the rows: each is freed as soon as the next exists.
pub fn sorted_rows(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    disagree_sigma: f64,
    table: &Table,
    path: &Path,
) -> Result<RecordBatch> {
    let all = concat_batches(schema, &batches).map_err(arrow_err(path))?;
    drop(batches);
    let sorted = sort_rows(&all, path)?;
    drop(all);
    let marked = super::rows::mark_primaries(&sorted, path)?;
    let marked = super::rows::mark_disagreements(&marked, disagree_sigma, path)?;
    match table {
        Table::Spectra => Ok(marked),
        Table::Stars { schema, floors } => {
            super::per_star::combine_stars(&marked, schema, floors, disagree_sigma, path)
        }
    }
}

/// Writes batches (sorted, and combined for the per-star table) to one Parquet file under a
/// temporary name, then renames it; `written` sees the rows as they go into the file (flags
/// complete). Returns the rows written.
#[allow(clippy::too_many_arguments)]
pub fn write_sorted(
    path: &Path,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    disagree_sigma: f64,
    table: &Table,
    kv: &[(String, String)],
    written: &mut dyn FnMut(&RecordBatch),
) -> Result<u64> {
    let sorted = sorted_rows(schema, batches, disagree_sigma, table, path)?;
    written(&sorted);
    write_rows(path, &sorted, kv)
}

/// Writes rows as they are to one Parquet file (temporary name, then renamed), the key-values in
/// the footer and in the Arrow schema; returns the rows written.
pub fn write_rows(path: &Path, rows: &RecordBatch, kv: &[(String, String)]) -> Result<u64> {
    let rows = rows.clone().with_schema(with_key_values(&rows.schema(), kv)).map_err(arrow_err(path))?;
    crate::io::write_atomically(path, |tmp| {
        let file = File::create(tmp).map_err(|e| CatalogError::io(tmp, e))?;
        let mut w = ArrowWriter::try_new(file, rows.schema(), Some(props(kv))).map_err(pq_err(tmp))?;
        for start in (0..rows.num_rows()).step_by(ROW_GROUP_ROWS) {
            let len = ROW_GROUP_ROWS.min(rows.num_rows() - start);
            w.write(&rows.slice(start, len)).map_err(pq_err(tmp))?;
        }
        w.close().map_err(pq_err(tmp))?;
        Ok(rows.num_rows() as u64)
    })
}

/// Spills rows to one Arrow IPC file per partition, so that each leaf can later be sorted and
/// written with memory bounded by the partition, not the catalogue.
pub struct Spill {
    dir: PathBuf,
    parts: Vec<Partition>,
    writers: Vec<Option<arrow::ipc::writer::FileWriter<File>>>,
    schema: SchemaRef,
}

/// More open spill files than this would exhaust file handles: raise `--max-rows` instead.
pub const MAX_PARTITIONS: usize = 2000;

impl Spill {
    pub fn new(dir: &Path, hist: &Histogram, max_rows: u64, schema: SchemaRef) -> Result<Self> {
        let mut parts = hist.partitions(max_rows);
        if parts.len() > MAX_PARTITIONS {
            return Err(CatalogError::Invalid(format!(
                "{} HATS partitions at --max-rows {max_rows}: more than {MAX_PARTITIONS}; raise --max-rows",
                parts.len()
            )));
        }
        sort_partitions(&mut parts);
        std::fs::create_dir_all(dir).map_err(|e| CatalogError::io(dir, e))?;
        let writers = parts.iter().map(|_| None).collect();
        Ok(Self { dir: dir.to_path_buf(), parts, writers, schema })
    }

    pub fn partitions(&self) -> &[Partition] {
        &self.parts
    }

    fn spill_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("part-{i:05}.arrow"))
    }

    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let h = batch.column_by_name(cat::_HEALPIX_29).expect("catalogue schema").as_primitive::<Int64Type>();
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); self.parts.len()];
        for r in 0..batch.num_rows() {
            let i = partition_of(&self.parts, h.value(r))
                .ok_or_else(|| CatalogError::Invalid(format!("row at pixel {} outside every partition", h.value(r))))?;
            groups[i].push(r as u32);
        }
        for (i, rows) in groups.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let path = self.spill_path(i);
            let part = take_record_batch(batch, &UInt32Array::from(rows)).map_err(arrow_err(&path))?;
            if self.writers[i].is_none() {
                let f = File::create(&path).map_err(|e| CatalogError::io(&path, e))?;
                self.writers[i] =
                    Some(arrow::ipc::writer::FileWriter::try_new(f, &self.schema).map_err(arrow_err(&path))?);
            }
            self.writers[i].as_mut().expect("just opened").write(&part).map_err(arrow_err(&path))?;
        }
        Ok(())
    }

    /// Sorts each partition and writes it as a HATS leaf under `root`; `written` sees each leaf's
    /// rows. Returns the leaves' footers.
    pub fn write_leaves(
        mut self,
        root: &Path,
        disagree_sigma: f64,
        table: &Table,
        kv: &[(String, String)],
        written: &mut dyn FnMut(&RecordBatch),
    ) -> Result<Vec<(Partition, ParquetMetaData)>> {
        let mut out = Vec::new();
        for i in 0..self.parts.len() {
            let path = self.spill_path(i);
            let Some(mut w) = self.writers[i].take() else { continue };
            w.finish().map_err(arrow_err(&path))?;
            drop(w);
            let f = File::open(&path).map_err(|e| CatalogError::io(&path, e))?;
            let reader = arrow::ipc::reader::FileReader::try_new(f, None).map_err(arrow_err(&path))?;
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(arrow_err(&path))?;
            let part = self.parts[i];
            let leaf = root.join(part.path());
            let dir = leaf.parent().expect("leaf paths have directories");
            std::fs::create_dir_all(dir).map_err(|e| CatalogError::io(dir, e))?;
            // Checked before anything is written: a neighbour's row must not reach the file.
            for b in &batches {
                rows_belong_to(&part, b, &leaf)?;
            }
            let rows = write_sorted(&leaf, &self.schema, batches, disagree_sigma, table, kv, written)?;
            if rows > part.rows {
                return Err(CatalogError::Invalid(format!(
                    "{}: {rows} rows where the sky histogram counted {}",
                    leaf.display(),
                    part.rows
                )));
            }
            std::fs::remove_file(&path).map_err(|e| CatalogError::io(&path, e))?;
            out.push((part, footer(&leaf)?));
        }
        Ok(out)
    }
}

/// Every row of a leaf lies in the leaf's pixel: a row in a neighbour's file is invisible to a
/// reader that prunes partitions by position (LSDB, HATS cone searches).
fn rows_belong_to(part: &Partition, batch: &RecordBatch, leaf: &Path) -> Result<()> {
    let h = batch.column_by_name(cat::_HEALPIX_29).expect("catalogue schema").as_primitive::<Int64Type>();
    let shift = 2 * (29 - u32::from(part.order));
    match h.values().iter().find(|&&v| (v >> shift) as u64 != part.pixel) {
        Some(v) => Err(CatalogError::Invalid(format!(
            "{}: a row at _healpix_29 {v} (order-{} pixel {}) in the leaf of pixel {}",
            leaf.display(),
            part.order,
            v >> shift,
            part.pixel
        ))),
        None => Ok(()),
    }
}

pub fn footer(path: &Path) -> Result<ParquetMetaData> {
    let f = File::open(path).map_err(|e| CatalogError::io(path, e))?;
    Ok(SerializedFileReader::new(f).map_err(pq_err(path))?.metadata().clone())
}

/// The file's key-values also in the Arrow schema's metadata: a file that embeds its Arrow schema
/// is read by pyarrow (and so pandas, astropy, LSDB) with that schema's metadata, not the footer's.
fn with_key_values(schema: &SchemaRef, kv: &[(String, String)]) -> SchemaRef {
    let mut metadata = schema.metadata().clone();
    metadata.extend(kv.iter().cloned());
    std::sync::Arc::new(schema.as_ref().clone().with_metadata(metadata))
}

/// `_common_metadata`: the schema and key-value metadata, no rows.
pub fn write_common_metadata(path: &Path, schema: &SchemaRef, kv: &[(String, String)]) -> Result<()> {
    let f = File::create(path).map_err(|e| CatalogError::io(path, e))?;
    let schema = with_key_values(schema, kv);
    ArrowWriter::try_new(f, schema, Some(props(kv))).map_err(pq_err(path))?.close().map_err(pq_err(path))?;
    Ok(())
}

/// `_metadata`: every leaf's row groups in one footer, each column chunk pointing at its file
/// (relative to the dataset directory).
pub fn write_metadata(path: &Path, leaves: &[(Partition, ParquetMetaData)]) -> Result<()> {
    let first = &leaves.first().ok_or_else(|| CatalogError::Invalid("no partitions to describe".into()))?.1;
    let mut row_groups = Vec::new();
    let mut rows = 0;
    for (part, md) in leaves {
        let rel = part.path().strip_prefix("dataset/").expect("leaf paths start with dataset/").to_string();
        rows += md.file_metadata().num_rows();
        for rg in md.row_groups() {
            let cols = rg
                .columns()
                .iter()
                .map(|c| c.clone().into_builder().set_file_path(rel.clone()).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(pq_err(path))?;
            row_groups.push(rg.clone().into_builder().set_column_metadata(cols).build().map_err(pq_err(path))?);
        }
    }
    let fm = first.file_metadata();
    let file_meta = FileMetaData::new(
        fm.version(),
        rows,
        fm.created_by().map(str::to_string),
        fm.key_value_metadata().cloned(),
        fm.schema_descr_ptr(),
        fm.column_orders().cloned(),
    );
    let md = ParquetMetaData::new(file_meta, row_groups);
    let mut f = File::create(path).map_err(|e| CatalogError::io(path, e))?;
    ParquetMetaDataWriter::new(&mut f, &md).finish().map_err(pq_err(path))
}

impl Table {
    /// HATS `default_columns`: what LSDB loads unless asked otherwise. Always whatever tells heads
    /// and repeats apart, so a default load is never read as one row per star when it is not.
    pub fn default_columns(&self) -> Vec<&'static str> {
        let (keys, repeats): (&[&'static str], &'static str) = match self {
            Table::Spectra => (&[cat::SOURCE_ID], cat::IS_PRIMARY),
            Table::Stars { .. } => (&[cat::STAR_ID, cat::SOURCE_ID], cs::N_USED),
        };
        let rest = [cat::RA, cat::DEC, cat::HEAD, cat::IS_DEFAULT_HEAD, cat::MODEL, cat::ADAPTER, repeats];
        let estimates = [
            cat::TEFF,
            cat::TEFF_ERR,
            cat::LOGG,
            cat::LOGG_ERR,
            cat::FEH,
            cat::FEH_ERR,
            cat::QUALITY_FLAGS,
            cat::SUCCESS,
        ];
        keys.iter().copied().chain(rest).chain(estimates).collect()
    }
}

/// What a HATS directory holds, for its `hats.properties`.
pub enum Dataset<'a> {
    /// The catalogue itself.
    Object { collection: &'a str, max_rows: u64, table: &'a Table },
    /// A margin cache of the catalogue at `primary` (relative to the margin's parent directory):
    /// the rows within `threshold_arcsec` of each partition's edge, from its neighbours.
    Margin { name: &'a str, primary: &'a str, threshold_arcsec: f64 },
}

/// `partition_info.csv` and `hats.properties`.
pub fn write_hats_index(root: &Path, parts: &[Partition], rows: u64, dataset: &Dataset) -> Result<()> {
    let mut csv = String::from("Norder,Npix\n");
    let mut sorted = parts.to_vec();
    sorted.sort_by_key(|p| (p.order, p.pixel));
    for p in &sorted {
        csv.push_str(&format!("{},{}\n", p.order, p.pixel));
    }
    let csv_path = root.join("partition_info.csv");
    std::fs::write(&csv_path, csv).map_err(|e| CatalogError::io(&csv_path, e))?;
    let size_kib: u64 = walk_size(&root.join("dataset")) / 1024;
    let kind = match dataset {
        Dataset::Object { collection, max_rows, table } => format!(
            "obs_collection={collection}\ndataproduct_type=object\nhats_max_rows={max_rows}\ndefault_columns={}\n",
            table.default_columns().join(" ")
        ),
        Dataset::Margin { name, primary, threshold_arcsec } => format!(
            "obs_collection={name}\ndataproduct_type=margin\nhats_primary_table_url={primary}\n\
             hats_margin_threshold={threshold_arcsec:?}\n"
        ),
    };
    let props = format!(
        "{kind}hats_nrows={rows}\nhats_col_ra=ra\nhats_col_dec=dec\nhats_col_healpix=_healpix_29\n\
         hats_col_healpix_order=29\nhats_npix_suffix=.parquet\nhats_order={}\nhats_estsize={size_kib}\n\
         hats_version=v1.0\nhats_builder=starpipe {}\n",
        parts.iter().map(|p| p.order).max().unwrap_or(0),
        crate::VERSION,
    );
    let p = root.join("hats.properties");
    std::fs::write(&p, props).map_err(|e| CatalogError::io(&p, e))
}

fn walk_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn default_columns_are_columns_of_their_table() {
        let stars = Table::Stars { schema: crate::schema::catalog_stars().to_arrow(0), floors: Default::default() };
        for (table, schema) in [(Table::Spectra, crate::schema::catalog()), (stars, crate::schema::catalog_stars())] {
            let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
            for c in table.default_columns() {
                assert!(names.contains(&c), "{c} is not a column of {}", schema.name);
            }
            // What tells heads and repeats apart is always loaded.
            assert!(table.default_columns().contains(&"head") && table.default_columns().contains(&"is_default_head"));
        }
        assert!(Table::Spectra.default_columns().contains(&"is_primary"));
    }

    #[test]
    fn a_row_outside_its_leaf_pixel_is_refused() {
        let part = Partition { order: 3, pixel: 17, rows: 2 };
        let shift = 2 * (29 - 3);
        let batch = |h: Vec<i64>| {
            let schema = Arc::new(Schema::new(vec![Field::new("_healpix_29", DataType::Int64, false)]));
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(h))]).unwrap()
        };
        let leaf = Path::new("leaf.parquet");
        // First and last order-29 pixel of order-3 pixel 17 belong; one step either side does not.
        let (first, last) = (17i64 << shift, (18i64 << shift) - 1);
        assert!(rows_belong_to(&part, &batch(vec![first, last]), leaf).is_ok());
        for outside in [first - 1, last + 1] {
            let err = rows_belong_to(&part, &batch(vec![first, outside]), leaf).unwrap_err().to_string();
            assert!(err.contains("leaf.parquet") && err.contains("pixel 17"), "{err}");
        }
    }
}
