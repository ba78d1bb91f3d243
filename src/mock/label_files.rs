//! Label catalogues of mock surveys, written twice: Parquet for code, CSV for people.

use super::MockError;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;
use std::path::Path;
use std::sync::Arc;

/// Writes `labels.parquet` (from `columns`) and `labels.csv` (from `csv_rows`, same column order)
/// into `dir`, each under a temporary name then renamed.
pub fn write_label_files(
    dir: &Path,
    schema: Arc<Schema>,
    columns: Vec<ArrayRef>,
    csv_rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), MockError> {
    write_table_files(dir, "labels", schema, columns, csv_rows)
}

/// Writes `<stem>.parquet` and `<stem>.csv` (same columns, same order) into `dir`.
pub fn write_table_files(
    dir: &Path,
    stem: &str,
    schema: Arc<Schema>,
    columns: Vec<ArrayRef>,
    csv_rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), MockError> {
    let err = |p: &Path, m: String| MockError::Write { path: p.to_path_buf(), message: m };
    let parquet = dir.join(format!("{stem}.parquet"));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(&parquet, e.to_string()))?;
    crate::io::write_small_table(&parquet, &batch)?;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut text = names.join(",") + "\n";
    for row in csv_rows {
        debug_assert_eq!(row.len(), names.len());
        text += &(row.join(",") + "\n");
    }
    let csv = dir.join(format!("{stem}.csv"));
    Ok(crate::io::write_bytes_atomically(&csv, text.as_bytes())?)
}
