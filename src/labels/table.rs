//! Label tables: reference Teff, log g, [Fe/H] (and their errors when given) keyed by the survey's
//! object id (LAMOST obsid, DESI TARGETID), read from Parquet or CSV. Column names match
//! case-insensitively, so survey catalogues (`TEFF`, `FEH_ERR`) and our mock tables both work.

use super::{LabelError, PARAMETERS, Result};
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
            return Err(LabelError::Invalid(format!(
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
    /// Rows not used, by reason (see [`Unusable`]).
    pub unusable: Unusable,
}

/// Rows of a label table that could not be used, each kind with its count and one example, so the
/// user learns why and where (rows counted from 1 after the header).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unusable {
    /// No key (null in the key column).
    pub without_key: Counted,
    /// A label column empty (null) in that row: non-stars in DESI tables, failed fits.
    pub missing_label: Counted,
    /// A label that is NaN or infinite.
    pub non_finite: Counted,
    /// A label that is text, not a number.
    pub non_numeric: Counted,
    /// Keys repeated with the same labels: the repeats are dropped, the key is used.
    pub repeated: Counted,
    /// Keys repeated with different labels: the key is not used at all (which row is right?).
    pub conflicting: Counted,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counted {
    pub count: usize,
    pub example: String,
}

impl Counted {
    fn add(&mut self, example: impl FnOnce() -> String) {
        if self.count == 0 {
            self.example = example();
        }
        self.count += 1;
    }
}

impl Unusable {
    /// Adds another table's counts (keeping the first example of each kind).
    fn absorb(&mut self, other: &Unusable) {
        for (mine, theirs) in [
            (&mut self.without_key, &other.without_key),
            (&mut self.missing_label, &other.missing_label),
            (&mut self.non_finite, &other.non_finite),
            (&mut self.non_numeric, &other.non_numeric),
            (&mut self.repeated, &other.repeated),
            (&mut self.conflicting, &other.conflicting),
        ] {
            if mine.count == 0 {
                mine.example = theirs.example.clone();
            }
            mine.count += theirs.count;
        }
    }

    /// One line per kind that occurred: "3 rows with a NaN or infinite label (e.g. row 7: teff = NaN)".
    pub fn lines(&self) -> Vec<String> {
        [
            (&self.without_key, "rows without a key"),
            (&self.missing_label, "rows with an empty label"),
            (&self.non_finite, "rows with a NaN or infinite label"),
            (&self.non_numeric, "rows with a label that is not a number"),
            (&self.repeated, "repeated rows of a key with the same labels (dropped)"),
            (&self.conflicting, "keys repeated with different labels (not used)"),
        ]
        .iter()
        .filter(|(c, _)| c.count > 0)
        .map(|(c, what)| format!("{} {what} (e.g. {})", c.count, c.example))
        .collect()
    }
}

impl LabelTable {
    pub fn get(&self, key: i64) -> Option<&Labels> {
        self.rows.get(&key)
    }
}

/// Reads several label tables as one (a mock survey's and a library render's, say), each with
/// [`read_labels`]. A key in two tables is used once when their labels agree and, as within one
/// table, not at all when they differ (counted as conflicting, the example naming both files).
pub fn read_label_tables(paths: &[PathBuf], spec: &LabelSpec) -> Result<LabelTable> {
    let (first, rest) = paths.split_first().expect("at least one label table");
    let mut merged = read_labels(first, spec)?;
    let mut conflicting = std::collections::HashSet::new();
    for path in rest {
        let table = read_labels(path, spec)?;
        merged.unusable.absorb(&table.unusable);
        for (key, labels) in table.rows {
            match merged.rows.get(&key) {
                // A key whose labels conflicted stays unused whatever a later table says.
                None if conflicting.contains(&key) => {}
                None => {
                    merged.rows.insert(key, labels);
                }
                Some(seen) if seen.values == labels.values => {
                    merged.unusable.repeated.add(|| format!("key {key} in {} and {}", first.display(), path.display()))
                }
                Some(_) => {
                    merged.rows.remove(&key);
                    conflicting.insert(key);
                    merged
                        .unusable
                        .conflicting
                        .add(|| format!("key {key}: other labels in {} than in {}", path.display(), first.display()));
                }
            }
        }
    }
    Ok(merged)
}

fn column_names(b: &RecordBatch) -> String {
    b.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Reads a label table; rows it cannot use are counted by reason, logged, and kept in
/// [`LabelTable::unusable`]. A table with no usable row, a missing column or a key that is not an
/// integer is an error naming the file.
pub fn read_labels(path: &Path, spec: &LabelSpec) -> Result<LabelTable> {
    if std::fs::metadata(path).map_err(|e| LabelError::io(path, e))?.len() == 0 {
        return Err(LabelError::bad(path, "empty file (a label table needs a header and rows)"));
    }
    let batches = read_table(path)?;
    let mut table = LabelTable {
        path: path.to_path_buf(),
        spec: spec.clone(),
        rows: HashMap::new(),
        unusable: Unusable::default(),
    };
    let mut conflicting: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let mut row_number = 0usize;
    for b in &batches {
        let find = |name: &str| {
            b.schema().fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)).map(|i| b.column(i).clone())
        };
        let need = |name: &str, what: &str| {
            find(name).ok_or_else(|| {
                LabelError::bad(path, format!("no {what} column '{name}'; the columns are: {}", column_names(b)))
            })
        };
        let as_f64 = |a: &dyn Array, name: &str| {
            cast(a, &DataType::Float64).map_err(|e| LabelError::bad(path, format!("column '{name}': {e}")))
        };
        let key_raw = need(&spec.key, "key")?;
        let strict = arrow::compute::CastOptions { safe: false, ..Default::default() };
        let key = arrow::compute::cast_with_options(&key_raw, &DataType::Int64, &strict)
            .map_err(|e| LabelError::bad(path, format!("key column '{}' must hold integer ids: {e}", spec.key)))?;
        let key = key.as_primitive::<Int64Type>();
        let mut raw = Vec::new();
        let mut values = Vec::new();
        let mut errors = Vec::new();
        for c in &spec.columns {
            let column = need(c, "label")?;
            values.push(as_f64(&column, c)?);
            raw.push(column);
            let err_name = format!("{c}_err");
            errors.push(find(&err_name).map(|a| as_f64(&a, &err_name)).transpose()?);
        }
        for r in 0..b.num_rows() {
            row_number += 1;
            if key.is_null(r) {
                table.unusable.without_key.add(|| format!("row {row_number}"));
                continue;
            }
            let get = |a: &dyn Array, r: usize| {
                if a.is_null(r) { f64::NAN } else { a.as_primitive::<Float64Type>().value(r) }
            };
            let v = [0, 1, 2].map(|i| get(values[i].as_ref(), r));
            if let Some(i) = (0..3).find(|&i| !v[i].is_finite()) {
                let name = &spec.columns[i];
                if raw[i].is_null(r) {
                    table.unusable.missing_label.add(|| format!("row {row_number}: {name} empty"));
                } else if values[i].is_null(r) {
                    let text = arrow::util::display::array_value_to_string(&raw[i], r).unwrap_or_default();
                    table.unusable.non_numeric.add(|| format!("row {row_number}: {name} = '{text}'"));
                } else {
                    table.unusable.non_finite.add(|| format!("row {row_number}: {name} = {}", v[i]));
                }
                continue;
            }
            let e = [0, 1, 2].map(|i| errors[i].as_ref().map_or(f64::NAN, |a| get(a.as_ref(), r)));
            let k = key.value(r);
            match table.rows.entry(k) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    if first.get().values == v {
                        table.unusable.repeated.add(|| format!("key {k}, row {row_number}"));
                    } else if conflicting.insert(k) {
                        let old = first.get().values;
                        table.unusable.conflicting.add(|| format!("key {k}: {old:?} vs {v:?} at row {row_number}"));
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Labels { values: v, errors: e });
                }
            }
        }
    }
    for k in &conflicting {
        table.rows.remove(k);
    }
    for line in table.unusable.lines() {
        tracing::warn!(file = %path.display(), "label table: {line}");
    }
    if table.rows.is_empty() {
        let why = table.unusable.lines();
        let why = if why.is_empty() { "the table has no rows".to_string() } else { why.join("; ") };
        return Err(LabelError::bad(path, format!("no row with all three labels ({why})")));
    }
    Ok(table)
}

/// A whole small table from Parquet or CSV (header row, types inferred).
pub fn read_table(path: &Path) -> Result<Vec<RecordBatch>> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("parquet") => read_parquet(path),
        Some("csv") => read_csv(path),
        _ => Err(LabelError::bad(path, "a table must be .parquet or .csv")),
    }
}

fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| LabelError::io(path, e))?;
    let pq = |e| LabelError::File(crate::io::FileError::Parquet { path: path.to_path_buf(), source: e });
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?.build().map_err(pq)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabelError::File(crate::io::FileError::Arrow { path: path.to_path_buf(), source: e }))
}

fn read_csv(path: &Path) -> Result<Vec<RecordBatch>> {
    use arrow::csv::reader::{Format, ReaderBuilder};
    let arrow_err = |e| LabelError::File(crate::io::FileError::Arrow { path: path.to_path_buf(), source: e });
    let format = Format::default().with_header(true);
    let file = File::open(path).map_err(|e| LabelError::io(path, e))?;
    let (schema, _) = format.infer_schema(file, Some(10_000)).map_err(arrow_err)?;
    let file = File::open(path).map_err(|e| LabelError::io(path, e))?;
    let reader = ReaderBuilder::new(std::sync::Arc::new(schema)).with_format(format).build(file).map_err(arrow_err)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(arrow_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn spec() -> LabelSpec {
        LabelSpec::new("obsid")
    }

    #[test]
    fn nan_and_infinite_labels_are_counted_with_an_example() {
        let (_d, p) = csv("obsid,teff,logg,feh\n1,5000,4.5,0.0\n2,NaN,4.4,0.1\n3,5100,inf,0.1\n");
        let t = read_labels(&p, &spec()).unwrap();
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.unusable.non_finite.count, 2);
        assert_eq!(t.unusable.non_finite.example, "row 2: teff = NaN");
    }

    #[test]
    fn text_in_a_label_column_is_named() {
        let (_d, p) = csv("obsid,teff,logg,feh\n1,5000,4.5,0.0\n2,hot,4.4,0.1\n3,5200,4.3,\n");
        let t = read_labels(&p, &spec()).unwrap();
        assert_eq!((t.unusable.non_numeric.count, t.unusable.missing_label.count), (1, 1));
        assert_eq!(t.unusable.non_numeric.example, "row 2: teff = 'hot'");
        assert!(t.unusable.lines().iter().any(|l| l.contains("not a number")), "{:?}", t.unusable.lines());
    }

    #[test]
    fn conflicting_duplicates_are_not_used_and_identical_ones_collapse() {
        let (_d, p) =
            csv("obsid,teff,logg,feh\n1,5000,4.5,0.0\n1,5000,4.5,0.0\n2,6000,4.0,-1\n2,6100,4.0,-1\n3,4800,2.5,0\n");
        let t = read_labels(&p, &spec()).unwrap();
        assert!(t.get(1).is_some() && t.get(2).is_none() && t.get(3).is_some());
        assert_eq!((t.unusable.repeated.count, t.unusable.conflicting.count), (1, 1));
        assert!(t.unusable.conflicting.example.starts_with("key 2:"), "{}", t.unusable.conflicting.example);
    }

    #[test]
    fn several_tables_read_as_one_and_keys_across_them_follow_the_same_rules() {
        let (_a, a) = csv("obsid,teff,logg,feh\n1,5000,4.5,0.0\n2,6000,4.0,-1\n3,4800,2.5,0\n4,,4.0,0\n");
        let (_b, b) = csv("obsid,teff,logg,feh\n3,4800,2.5,0\n2,6100,4.0,-1\n5,5500,4.2,-0.5\n");
        let (_c, c) = csv("obsid,teff,logg,feh\n2,6000,4.0,-1\n");
        let t = read_label_tables(&[a.clone(), b.clone(), c], &spec()).unwrap();
        // 1 and 5 from one table each, 3 in both alike; 2 differs between them: not used, even
        // when a third table agrees with one of them.
        assert!(t.get(1).is_some() && t.get(3).is_some() && t.get(5).is_some() && t.get(2).is_none());
        assert_eq!(t.rows.len(), 3);
        assert_eq!(
            (t.unusable.repeated.count, t.unusable.conflicting.count, t.unusable.missing_label.count),
            (1, 1, 1)
        );
        let example = &t.unusable.conflicting.example;
        assert!(example.starts_with("key 2:") && example.contains(&b.display().to_string()), "{example}");
        // One table is exactly read_labels (errors are NaN here: compare values).
        let values = |t: LabelTable| -> std::collections::BTreeMap<i64, [f64; 3]> {
            t.rows.into_iter().map(|(k, l)| (k, l.values)).collect()
        };
        assert_eq!(
            values(read_label_tables(std::slice::from_ref(&a), &spec()).unwrap()),
            values(read_labels(&a, &spec()).unwrap())
        );
    }

    #[test]
    fn a_key_that_is_not_an_integer_is_an_error() {
        let (_d, p) = csv("obsid,teff,logg,feh\n1,5000,4.5,0.0\nJ1234+5678,5000,4.5,0.0\n");
        let e = read_labels(&p, &spec()).unwrap_err().to_string();
        assert!(e.contains("labels.csv") && e.contains("must hold integer ids"), "{e}");
    }

    #[test]
    fn an_empty_file_and_a_table_without_rows_are_errors() {
        let (_d, p) = csv("");
        let e = read_labels(&p, &spec()).unwrap_err().to_string();
        assert!(e.contains("labels.csv") && e.contains("empty file"), "{e}");
        let (_d, p) = csv("obsid,teff,logg,feh\n");
        let e = read_labels(&p, &spec()).unwrap_err().to_string();
        assert!(e.contains("no row with all three labels"), "{e}");
        let (_d, p) = csv("obsid,teff,logg,feh\n1,NaN,4,0\n");
        let e = read_labels(&p, &spec()).unwrap_err().to_string();
        assert!(e.contains("NaN or infinite"), "{e}");
    }

    #[test]
    fn a_misspelt_column_lists_the_columns_there_are() {
        let (_d, p) = csv("OBSID,teff,logg,feh\n1,5000,4.5,0.0\n");
        let e = read_labels(&p, &LabelSpec::new("obs_id")).unwrap_err().to_string();
        assert!(e.contains("no key column 'obs_id'") && e.contains("OBSID, teff, logg, feh"), "{e}");
    }

    #[test]
    fn quoted_csv_fields_are_read_as_values() {
        let (_d, p) = csv(
            "\"obsid\",\"name, with comma\",\"teff\",\"logg\",\"feh\"\n\"7\",\"a \"\"quoted\"\" star\",\"5000.5\",4.5,\"-0.25\"\n",
        );
        let t = read_labels(&p, &spec()).unwrap();
        assert_eq!(t.get(7).unwrap().values, [5000.5, 4.5, -0.25]);
    }
}
