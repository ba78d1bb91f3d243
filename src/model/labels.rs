//! Label tables: reference Teff, log g, [Fe/H] (and their errors when given) keyed by the survey's
//! object id (LAMOST obsid, DESI TARGETID), read from Parquet or CSV. Column names match
//! case-insensitively, so survey catalogues (`TEFF`, `FEH_ERR`) and our mock tables both work.

use super::{ModelError, PARAMETERS, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Which columns hold the key and the three labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSpec {
    pub key: String,
    /// Teff, log g, [Fe/H] columns; `<name>_err` is read as the error when present.
    pub columns: [String; 3],
}

impl LabelSpec {
    pub fn new(key: &str) -> Self {
        Self { key: key.to_string(), columns: PARAMETERS.map(|p| p.name().to_string()) }
    }

    /// `teff,logg,feh`-style list from the command line.
    pub fn with_columns(mut self, list: &str) -> Result<Self> {
        let names: Vec<&str> = list.split(',').map(str::trim).collect();
        if names.len() != 3 || names.iter().any(|n| n.is_empty()) {
            return Err(ModelError::Invalid(format!(
                "--label-columns must name three columns (Teff, log g, [Fe/H]), got '{list}'"
            )));
        }
        self.columns = [0, 1, 2].map(|i| names[i].to_string());
        Ok(self)
    }
}

/// Reference labels of one object; errors are NaN where the table has none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labels {
    pub values: [f64; 3],
    pub errors: [f64; 3],
}

#[derive(Debug, Clone)]
pub struct LabelTable {
    pub path: PathBuf,
    pub spec: LabelSpec,
    pub rows: HashMap<i64, Labels>,
    /// Rows without all three labels (non-stars in DESI tables, failed fits).
    pub incomplete: usize,
    /// Keys seen more than once; the first row is kept.
    pub duplicates: usize,
}

impl LabelTable {
    pub fn get(&self, key: i64) -> Option<&Labels> {
        self.rows.get(&key)
    }
}

pub fn read_labels(path: &Path, spec: &LabelSpec) -> Result<LabelTable> {
    let batches = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("parquet") => read_parquet(path)?,
        Some("csv") => read_csv(path)?,
        _ => return Err(ModelError::bad(path, "label table must be .parquet or .csv")),
    };
    let mut table =
        LabelTable { path: path.to_path_buf(), spec: spec.clone(), rows: HashMap::new(), incomplete: 0, duplicates: 0 };
    for b in &batches {
        let find = |name: &str| {
            b.schema().fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)).map(|i| b.column(i).clone())
        };
        let need = |name: &str| find(name).ok_or_else(|| ModelError::bad(path, format!("no column '{name}'")));
        let as_f64 = |a: &dyn Array, name: &str| {
            cast(a, &DataType::Float64).map_err(|e| ModelError::bad(path, format!("column '{name}': {e}")))
        };
        let key = cast(&need(&spec.key)?, &DataType::Int64)
            .map_err(|e| ModelError::bad(path, format!("key column '{}': {e}", spec.key)))?;
        let key = key.as_primitive::<Int64Type>();
        let mut values = Vec::new();
        let mut errors = Vec::new();
        for c in &spec.columns {
            values.push(as_f64(&need(c)?, c)?);
            let err_name = format!("{c}_err");
            errors.push(find(&err_name).map(|a| as_f64(&a, &err_name)).transpose()?);
        }
        for r in 0..b.num_rows() {
            if key.is_null(r) {
                table.incomplete += 1;
                continue;
            }
            let get = |a: &dyn Array, r: usize| {
                if a.is_null(r) { f64::NAN } else { a.as_primitive::<Float64Type>().value(r) }
            };
            let v = [0, 1, 2].map(|i| get(values[i].as_ref(), r));
            if v.iter().any(|x| !x.is_finite()) {
                table.incomplete += 1;
                continue;
            }
            let e = [0, 1, 2].map(|i| errors[i].as_ref().map_or(f64::NAN, |a| get(a.as_ref(), r)));
            match table.rows.entry(key.value(r)) {
                std::collections::hash_map::Entry::Occupied(_) => table.duplicates += 1,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Labels { values: v, errors: e });
                }
            }
        }
    }
    if table.rows.is_empty() {
        return Err(ModelError::bad(path, "no row with all three labels"));
    }
    Ok(table)
}

fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let pq = |e| ModelError::Parquet { path: path.to_path_buf(), source: e };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?.build().map_err(pq)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| ModelError::Arrow { path: path.to_path_buf(), source: e })
}

fn read_csv(path: &Path) -> Result<Vec<RecordBatch>> {
    use arrow::csv::reader::{Format, ReaderBuilder};
    let arrow_err = |e| ModelError::Arrow { path: path.to_path_buf(), source: e };
    let format = Format::default().with_header(true);
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let (schema, _) = format.infer_schema(file, Some(10_000)).map_err(arrow_err)?;
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let reader = ReaderBuilder::new(std::sync::Arc::new(schema)).with_format(format).build(file).map_err(arrow_err)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(arrow_err)
}
