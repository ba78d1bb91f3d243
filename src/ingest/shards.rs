//! Parquet output: normalised-spectra shards and report parts, each written under a temporary
//! name and renamed into place, so a reader (or a resumed run) never sees half a file.

use super::record::{ReportRow, SpectrumRecord};
use crate::schema::columns::{ingest_report as ir, normalized_spectra as ns};
use crate::schema::{self, list_item_field};
use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::Schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::io::WriteError;
use crate::io::{tmp_path, write_small_table};

fn spectra_properties(row_group_rows: usize) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        // zstd 1: on byte-stream-split spectra it gives the same size as level 3 (measured: 107 MB
        // for 9714 spectra either way) for less CPU.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_max_row_group_bytes(Some(256 << 20));
    // Pixel arrays: byte-stream-split compresses float mantissas well; dictionaries and min/max
    // statistics (no query filters on a pixel value) only cost time.
    for col in [ns::FLUX, ns::IVAR] {
        let path = ColumnPath::from(vec![col.to_string(), "list".to_string(), "item".to_string()]);
        b = b
            .set_column_encoding(path.clone(), Encoding::BYTE_STREAM_SPLIT)
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    // Bloom filters on the ids, sized for one row group: the default (1M distinct values, ~1 MB
    // each) would cost more memory and bytes than the ids themselves.
    for col in [ns::SOURCE_ID, ns::OBSID, ns::TARGETID] {
        b = b
            .set_column_bloom_filter_enabled(ColumnPath::from(col), true)
            .set_column_bloom_filter_max_ndv(ColumnPath::from(col), row_group_rows as u64);
    }
    b.build()
}

/// Spectra handed to the Parquet writer at a time. Small batches keep the Arrow staging buffers
/// small (64 × 2 × 15.6 kB on the full grid): with 1024-row batches the allocator's fragmentation
/// from those 32 MB buffers made peak RSS grow with the number of inputs (measured: 191 → 330 MiB
/// from 10k to 60k files; 92 → 172 MiB with 64).
const PENDING_ROWS: usize = 64;

/// One normalised-spectra shard being written.
pub struct SpectraShardWriter {
    final_path: PathBuf,
    tmp: PathBuf,
    schema: Arc<Schema>,
    npix: usize,
    writer: ArrowWriter<File>,
    pending: Vec<SpectrumRecord>,
    batch_rows: usize,
    rows: usize,
}

impl SpectraShardWriter {
    /// `schema_metadata` goes into the Arrow schema (what pyarrow and polars show as schema
    /// metadata) as well as into the Parquet key-value metadata.
    pub fn create(
        final_path: PathBuf,
        npix: usize,
        row_group_rows: usize,
        schema_metadata: &[(String, String)],
    ) -> Result<Self, WriteError> {
        let tmp = tmp_path(&final_path);
        let file = File::create(&tmp).map_err(|e| WriteError::Io { path: tmp.clone(), source: e })?;
        let base = schema::normalized_spectra().to_arrow(npix);
        let schema = Arc::new(
            base.as_ref()
                .clone()
                .with_metadata(schema_metadata.iter().cloned().collect::<std::collections::HashMap<String, String>>()),
        );
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(spectra_properties(row_group_rows)))
            .map_err(|e| WriteError::Parquet { path: tmp.clone(), source: e })?;
        Ok(Self {
            final_path,
            tmp,
            schema,
            npix,
            writer,
            pending: Vec::new(),
            batch_rows: row_group_rows.clamp(1, PENDING_ROWS),
            rows: 0,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows + self.pending.len()
    }

    pub fn file_name(&self) -> String {
        self.final_path.file_name().unwrap_or_default().to_string_lossy().into_owned()
    }

    pub fn push(&mut self, rec: SpectrumRecord) -> Result<(), WriteError> {
        self.pending.push(rec);
        if self.pending.len() >= self.batch_rows {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = spectra_batch(&self.schema, self.npix, &self.pending)
            .map_err(|e| WriteError::Arrow { path: self.tmp.clone(), source: e })?;
        self.writer.write(&batch).map_err(|e| WriteError::Parquet { path: self.tmp.clone(), source: e })?;
        self.rows += self.pending.len();
        self.pending.clear();
        Ok(())
    }

    /// Writes the footer with `metadata`, then renames the file into place.
    pub fn finish(mut self, metadata: Vec<(String, String)>) -> Result<PathBuf, WriteError> {
        self.flush_pending()?;
        for (k, v) in metadata {
            self.writer.append_key_value_metadata(KeyValue::new(k, v));
        }
        self.writer.close().map_err(|e| WriteError::Parquet { path: self.tmp.clone(), source: e })?;
        crate::io::commit(&self.final_path)?;
        Ok(self.final_path)
    }
}

fn spectra_batch(
    schema: &Arc<Schema>,
    npix: usize,
    recs: &[SpectrumRecord],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let m = |f: &dyn Fn(&SpectrumRecord) -> Option<f32>| -> ArrayRef {
        Arc::new(recs.iter().map(f).collect::<Float32Array>())
    };
    let pixels = |ivar: bool| -> Result<ArrayRef, arrow::error::ArrowError> {
        let mut values = Vec::with_capacity(recs.len() * npix);
        for r in recs {
            let s = &r.prepared.spectrum;
            values.extend_from_slice(if ivar { &s.ivar } else { &s.flux });
        }
        Ok(Arc::new(FixedSizeListArray::try_new(
            list_item_field(),
            npix as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )?))
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef, arrow::error::ArrowError> {
            let s = |f: &dyn Fn(&SpectrumRecord) -> String| -> ArrayRef {
                Arc::new(recs.iter().map(f).map(Some).collect::<StringArray>())
            };
            let opt_s = |f: &dyn Fn(&SpectrumRecord) -> Option<&str>| -> ArrayRef {
                Arc::new(recs.iter().map(f).collect::<StringArray>())
            };
            let i64s = |f: &dyn Fn(&SpectrumRecord) -> Option<i64>| -> ArrayRef {
                Arc::new(recs.iter().map(f).collect::<Int64Array>())
            };
            let i32s = |f: &dyn Fn(&SpectrumRecord) -> Option<i32>| -> ArrayRef {
                Arc::new(recs.iter().map(f).collect::<Int32Array>())
            };
            let f64s = |f: &dyn Fn(&SpectrumRecord) -> Option<f64>| -> ArrayRef {
                Arc::new(recs.iter().map(f).collect::<Float64Array>())
            };
            Ok(match field.name().as_str() {
                ns::SPECTRUM_ID => s(&|r| r.meta.spectrum_id.clone()),
                ns::SURVEY => s(&|r| r.meta.survey.to_string()),
                ns::RELEASE => s(&|r| r.meta.release.clone()),
                ns::SOURCE_ID => i64s(&|r| Some(r.meta.source_id)),
                ns::OBSID => i64s(&|r| r.meta.obsid),
                ns::TARGETID => i64s(&|r| r.meta.targetid),
                ns::RA => f64s(&|r| Some(r.meta.ra)),
                ns::DEC => f64s(&|r| Some(r.meta.dec)),
                ns::SOURCE_PATH => s(&|r| r.meta.source_path.clone()),
                ns::SOURCE_ROW => i32s(&|r| Some(r.meta.source_row)),
                ns::OBJECT_CLASS => s(&|r| r.meta.object_class.clone()),
                ns::OBJECT_SUBCLASS => opt_s(&|r| r.meta.object_subclass.as_deref()),
                ns::Z => f64s(&|r| r.meta.z),
                ns::Z_ERR => f64s(&|r| r.meta.z_err),
                ns::RV_KMS => f64s(&|r| r.meta.z.map(|z| z * crate::preprocess::C_KMS)),
                ns::ZWARN => i64s(&|r| r.meta.zwarn),
                ns::SELECTION_METHOD => s(&|r| r.meta.selection_method.to_string()),
                ns::REST_FRAME => {
                    Arc::new(recs.iter().map(|r| Some(r.prepared.rest_frame_applied)).collect::<BooleanArray>())
                }
                ns::FIBER_MASK => i32s(&|r| r.meta.fiber_mask),
                ns::FIBER_STATUS => i32s(&|r| r.meta.fiber_status),
                ns::DESI_TARGET => i64s(&|r| r.meta.desi_target),
                ns::BGS_TARGET => i64s(&|r| r.meta.bgs_target),
                ns::MWS_TARGET => i64s(&|r| r.meta.mws_target),
                ns::SCND_TARGET => i64s(&|r| r.meta.scnd_target),
                ns::STAR_ID => s(&|r| r.meta.ids.star_id.clone()),
                ns::GAIA_SOURCE_ID => i64s(&|r| r.meta.ids.gaia_source_id),
                ns::REF_ID => i64s(&|r| r.meta.ids.ref_id),
                ns::REF_CAT => opt_s(&|r| r.meta.ids.ref_cat.as_deref()),
                ns::GAIA_PHOT_G_MEAN_MAG => m(&|r| r.meta.ids.gaia_mags[0]),
                ns::GAIA_PHOT_BP_MEAN_MAG => m(&|r| r.meta.ids.gaia_mags[1]),
                ns::GAIA_PHOT_RP_MEAN_MAG => m(&|r| r.meta.ids.gaia_mags[2]),
                ns::DESI_SURVEY => opt_s(&|r| r.meta.ids.desi_survey.as_deref()),
                ns::DESI_PROGRAM => opt_s(&|r| r.meta.ids.desi_program.as_deref()),
                ns::HEALPIX => i32s(&|r| r.meta.ids.healpix),
                ns::TILEID => i32s(&|r| r.meta.ids.tileid),
                ns::DESIGNATION => opt_s(&|r| r.meta.ids.designation.as_deref()),
                ns::LMJD => i32s(&|r| r.meta.ids.lmjd),
                ns::PLANID => opt_s(&|r| r.meta.ids.planid.as_deref()),
                ns::SPID => i32s(&|r| r.meta.ids.spid),
                ns::FIBERID => i32s(&|r| r.meta.ids.fiberid),
                ns::SNR_U => m(&|r| r.meta.snr_ugriz[0]),
                ns::SNR_G => m(&|r| r.meta.snr_ugriz[1]),
                ns::SNR_R => m(&|r| r.meta.snr_ugriz[2]),
                ns::SNR_I => m(&|r| r.meta.snr_ugriz[3]),
                ns::SNR_Z => m(&|r| r.meta.snr_ugriz[4]),
                ns::SNR_ARM_B => m(&|r| r.meta.snr_arm_brz[0]),
                ns::SNR_ARM_R => m(&|r| r.meta.snr_arm_brz[1]),
                ns::SNR_ARM_Z => m(&|r| r.meta.snr_arm_brz[2]),
                ns::SNR_GRID => m(&|r| Some(r.prepared.snr_grid)),
                ns::MASKED_FRACTION => m(&|r| Some(r.prepared.masked_fraction)),
                ns::FLUX => pixels(false)?,
                ns::IVAR => pixels(true)?,
                other => panic!("column '{other}' of schemas/normalized_spectra.toml has no writer"),
            })
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writes one report part in one go (tmp + rename).
pub fn write_report(final_path: &Path, shard_name: &str, rows: &[ReportRow]) -> Result<(), WriteError> {
    let schema = schema::ingest_report().to_arrow(0);
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match field.name().as_str() {
                ir::INPUT_INDEX => Arc::new(rows.iter().map(|r| Some(r.input_index)).collect::<Int64Array>()),
                ir::INPUT_PATH => Arc::new(rows.iter().map(|r| Some(r.input_path.as_str())).collect::<StringArray>()),
                ir::LEVEL => Arc::new(
                    rows.iter()
                        .map(|r| Some(if r.level == super::record::Level::File { "file" } else { "target" }))
                        .collect::<StringArray>(),
                ),
                ns::SOURCE_ROW => Arc::new(rows.iter().map(|r| r.source_row).collect::<Int32Array>()),
                ns::SOURCE_ID => Arc::new(rows.iter().map(|r| r.source_id).collect::<Int64Array>()),
                ir::STATUS => Arc::new(rows.iter().map(|r| Some(r.status.as_str())).collect::<StringArray>()),
                ir::REASON => Arc::new(rows.iter().map(|r| r.reason.as_deref()).collect::<StringArray>()),
                ns::SPECTRUM_ID => Arc::new(rows.iter().map(|r| r.spectrum_id.as_deref()).collect::<StringArray>()),
                ir::SHARD => Arc::new(rows.iter().map(|_| Some(shard_name)).collect::<StringArray>()),
                other => panic!("column '{other}' of schemas/ingest_report.toml has no writer"),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns)
        .map_err(|e| WriteError::Arrow { path: final_path.to_path_buf(), source: e })?;
    write_small_table(final_path, &batch)
}
