//! Small Parquet tables and the readers every stage uses: named columns in the order asked,
//! and a file's key-value metadata.

use super::WriteError;
use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::Path;

/// Writes a small table (one batch) as zstd Parquet, under a temporary name then renamed.
pub fn write_small_table(final_path: &Path, batch: &RecordBatch) -> Result<(), WriteError> {
    super::write_atomically(final_path, |tmp| {
        let parquet_err = |e| WriteError::Parquet { path: tmp.to_path_buf(), source: e };
        let file = File::create(tmp).map_err(|e| WriteError::io(tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
            .build();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet_err)?;
        w.write(batch).map_err(parquet_err)?;
        w.close().map_err(parquet_err)?;
        Ok(())
    })
}

/// Key-value metadata of a finished shard.
pub fn read_key_value_metadata(path: &Path) -> Result<Vec<(String, String)>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    Ok(reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default())
}

/// The named columns of a Parquet file, read in blocks of `batch_rows`, each block's columns in the
/// order named (a projection alone keeps the file's order). A missing column is an error here,
/// before any block is read.
pub fn read_columns<'a>(
    file: File,
    columns: &'a [&'a str],
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>> + 'a, parquet::errors::ParquetError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::errors::ParquetError;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let roots = columns
        .iter()
        .map(|c| builder.schema().index_of(c).map_err(|_| ParquetError::General(format!("no column {c}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).with_batch_size(batch_rows).build()?;
    Ok(reader.map(move |b| {
        let b = b?;
        let order = columns.iter().map(|c| b.schema().index_of(c)).collect::<Result<Vec<_>, _>>()?;
        plain_strings(b.project(&order)?)
    }))
}

/// Strings as `Utf8` whatever wrote the file: pandas 3 and Polars write `large_string` (or views,
/// or dictionaries for categoricals), and a table a user saved is read like one we wrote.
fn plain_strings(b: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::datatypes::{DataType, Field, Schema};
    let is_text = |t: &DataType| match t {
        DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        _ => false,
    };
    if !b.schema().fields().iter().any(|f| is_text(f.data_type())) {
        return Ok(b);
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if is_text(f.data_type()) {
            cols.push(arrow::compute::cast(c, &DataType::Utf8)?);
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()).with_metadata(f.metadata().clone()));
        } else {
            cols.push(c.clone());
            fields.push(f.as_ref().clone());
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new_with_metadata(fields, b.schema().metadata().clone())), cols)
}
