//! What an ingest made of a damaged corpus: every input accounted once, no unwritable value.
//! Shared by the corpus test and the fuzz benchmark, so both judge by the same rules.

use super::Mutant;
use crate::artifacts::ShardKind;
use crate::schema::columns::{ingest_report as ir, normalized_spectra as ns};
use arrow::array::{Array, AsArray};
use arrow::datatypes::Float32Type;
use std::collections::BTreeMap;
use std::path::Path;

/// The verdict on one ingest output directory.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CorpusCheck {
    /// Inputs with exactly one file row in the report.
    pub accounted: usize,
    /// Inputs with no file row.
    pub missing: Vec<String>,
    /// Inputs with more than one file row.
    pub duplicated: Vec<String>,
    /// File rows that name no input of the corpus.
    pub unknown: Vec<String>,
    /// Skipped or failed file rows without a reason.
    pub without_reason: usize,
    /// File rows by status.
    pub files: BTreeMap<String, usize>,
    /// Spectra in the shards.
    pub spectra: usize,
    /// Flux values that are not finite, and ivar values that are not finite or negative.
    pub bad_flux: usize,
    pub bad_ivar: usize,
}

impl CorpusCheck {
    /// Every promise kept: all accounted once, nothing unknown, reasons given, values finite.
    pub fn holds(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unknown.is_empty()
            && self.without_reason == 0
            && self.bad_flux == 0
            && self.bad_ivar == 0
    }
}

fn parts(out: &Path, kind: ShardKind) -> Result<Vec<std::path::PathBuf>, String> {
    let mut v: Vec<_> = std::fs::read_dir(out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| kind.matches(n)))
        .collect();
    v.sort();
    Ok(v)
}

fn batches(path: &Path, columns: &[&str]) -> Result<Vec<arrow::array::RecordBatch>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = crate::io::read_columns(file, columns, 4096).map_err(|e| format!("{}: {e}", path.display()))?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the report parts and spectra shards in `out` and judges them against `mutants`.
pub fn check_ingest_output(out: &Path, mutants: &[Mutant]) -> Result<CorpusCheck, String> {
    let mut c = CorpusCheck::default();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    for p in parts(out, ShardKind::Report)? {
        for b in batches(&p, &[ir::LEVEL, ir::INPUT_PATH, ir::STATUS, ir::REASON])? {
            let col = |i: usize| b.column(i).as_string::<i32>().clone();
            let (level, path, status, reason) = (col(0), col(1), col(2), col(3));
            for i in (0..b.num_rows()).filter(|&i| level.value(i) == "file") {
                let name = Path::new(path.value(i)).file_name().map(|n| n.to_string_lossy().into_owned());
                *rows.entry(name.unwrap_or_default()).or_default() += 1;
                *c.files.entry(status.value(i).to_string()).or_default() += 1;
                if status.value(i) != "written" && (reason.is_null(i) || reason.value(i).is_empty()) {
                    c.without_reason += 1;
                }
            }
        }
    }
    for m in mutants {
        let name = m.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match rows.remove(&name) {
            Some(1) => c.accounted += 1,
            Some(_) => c.duplicated.push(name),
            None => c.missing.push(name),
        }
    }
    c.unknown = rows.into_keys().collect();
    for p in parts(out, ShardKind::Spectra)? {
        for b in batches(&p, &[ns::FLUX, ns::IVAR])? {
            c.spectra += b.num_rows();
            for (i, bad) in [(0, &mut c.bad_flux), (1, &mut c.bad_ivar)] {
                let values = b.column(i).as_fixed_size_list().values().as_primitive::<Float32Type>().clone();
                *bad += (0..values.len())
                    .filter(|&j| values.is_null(j) || !values.value(j).is_finite() || (i == 1 && values.value(j) < 0.0))
                    .count();
            }
        }
    }
    Ok(c)
}
