//! What the report reads: the evaluation's per-star predictions and metrics, the catalogue's
//! estimates and flags, and the ingest report parts (inputs written, skipped, failed, with reasons).

use super::ReportError;
use crate::catalog::flags;
use crate::schema::columns::{
    catalog as cat, evaluation_metrics as em, evaluation_predictions as ep, ingest_report as ir,
};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, UInt32Type};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn read_all(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>, ReportError> {
    let bad = |m: String| ReportError::Read { path: path.to_path_buf(), reason: m };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let reader = crate::io::read_columns(file, columns, 65_536).map_err(|e| bad(e.to_string()))?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))
}

fn floats(a: &dyn Array) -> Vec<f64> {
    let a = arrow::compute::cast(a, &DataType::Float64).expect("numeric column casts to float64");
    let a = a.as_primitive::<Float64Type>();
    (0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }).collect()
}

fn strings(a: &dyn Array) -> Vec<String> {
    let a = arrow::compute::cast(a, &DataType::Utf8).expect("column casts to utf8");
    let a = a.as_string::<i32>();
    (0..a.len()).map(|i| if a.is_null(i) { String::new() } else { a.value(i).to_string() }).collect()
}

fn bools(a: &dyn Array) -> Vec<bool> {
    let a = a.as_boolean();
    (0..a.len()).map(|i| !a.is_null(i) && a.value(i)).collect()
}

/// One star scored by one (input, strategy) of the evaluation.
#[derive(Debug, Clone)]
pub struct ScoredStar {
    pub reference: [f64; 3],
    pub predicted: [f64; 3],
    /// The reported 1σ errors.
    pub error: [f64; 3],
}

/// The evaluation's per-star predictions grouped by `input/strategy`, in first-seen order.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub groups: Vec<(String, Vec<ScoredStar>)>,
    /// evaluation.parquet, as rows of (column → text) in file order.
    pub metrics: Vec<BTreeMap<String, String>>,
}

pub const PARAMETERS: [(&str, &str); 3] =
    [(cat::TEFF, "Teff [K]"), (cat::LOGG, "log g [log(cm.s**-2)]"), (cat::FEH, "[Fe/H] [dex]")];

impl Evaluation {
    pub fn read(dir: &Path) -> Result<Evaluation, ReportError> {
        let mut e = Evaluation::default();
        let cols = [
            ep::INPUT,
            ep::STRATEGY,
            ep::TEFF_REF,
            ep::TEFF,
            ep::LOGG_REF,
            ep::LOGG,
            ep::FEH_REF,
            ep::FEH,
            ep::TEFF_ERR,
            ep::LOGG_ERR,
            ep::FEH_ERR,
        ];
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for b in read_all(&dir.join(crate::artifacts::layout::EVALUATION_STARS), &cols)? {
            let input = strings(b.column(0));
            let strategy = strings(b.column(1));
            let v: Vec<Vec<f64>> = (2..11).map(|i| floats(b.column(i))).collect();
            for r in 0..b.num_rows() {
                let name = format!("{}/{}", input[r], strategy[r]);
                let k = *index.entry(name.clone()).or_insert_with(|| {
                    e.groups.push((name, Vec::new()));
                    e.groups.len() - 1
                });
                e.groups[k].1.push(ScoredStar {
                    reference: [v[0][r], v[2][r], v[4][r]],
                    predicted: [v[1][r], v[3][r], v[5][r]],
                    error: [v[6][r], v[7][r], v[8][r]],
                });
            }
        }
        let metric_cols = [
            em::INPUT,
            em::STRATEGY,
            em::N_TRAIN,
            em::PARAMETER,
            em::UNIT,
            em::REGIME,
            em::N,
            em::BIAS,
            em::ROBUST_SIGMA,
            em::SIGMA,
            em::MAE,
            em::OUTLIER_FRACTION,
            em::WITHIN_1SIGMA,
            em::WITHIN_2SIGMA,
            em::Z_ROBUST_SIGMA,
            em::MEDIAN_Z,
        ];
        for b in read_all(&dir.join(crate::artifacts::layout::EVALUATION_TABLE), &metric_cols)? {
            let text: Vec<Vec<String>> = (0..b.num_columns())
                .map(|i| {
                    let c = b.column(i);
                    if c.data_type().is_floating() {
                        floats(c).iter().map(|v| format_number(*v)).collect()
                    } else {
                        strings(c)
                    }
                })
                .collect();
            e.metrics.extend(
                (0..b.num_rows())
                    .map(|r| metric_cols.iter().zip(&text).map(|(c, col)| (c.to_string(), col[r].clone())).collect()),
            );
        }
        Ok(e)
    }
}

/// Three significant digits, no exponent for the usual ranges.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// The catalogue columns the report plots, for one head (the `head` column, `model/adapter`): the
/// one asked for, else the catalogue's default head (`is_default_head`).
#[derive(Debug, Default)]
pub struct Catalog {
    pub head: String,
    pub heads: usize,
    pub rows: usize,
    pub spectrum_id: Vec<String>,
    pub teff: Vec<f64>,
    pub logg: Vec<f64>,
    pub feh: Vec<f64>,
    /// 1σ errors of Teff, log g, [Fe/H] per row.
    pub errors: Vec<[f64; 3]>,
    pub chi2_red: Vec<f64>,
    pub snr: Vec<f64>,
    pub flags: Vec<u32>,
    pub success: Vec<bool>,
    pub primary: Vec<bool>,
}

/// A catalogue file, or every leaf of a HATS directory.
pub fn catalog_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    // A HATS catalogue keeps its leaves under dataset/; a plain directory holds the files.
    let hats = path.join("dataset");
    let root = if hats.is_dir() { hats.as_path() } else { path };
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

impl Catalog {
    pub fn read(path: &Path, head: Option<&str>) -> Result<Catalog, ReportError> {
        if path.is_file() && !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
            return Err(ReportError::Read {
                path: path.to_path_buf(),
                reason: "the report reads a Parquet catalogue or a HATS directory (catalog --format parquet or \
                         hats); a FITS catalogue is for TOPCAT and other FITS tools"
                    .into(),
            });
        }
        let files = catalog_files(path);
        if files.is_empty() {
            return Err(ReportError::Read { path: path.to_path_buf(), reason: "no catalogue Parquet file".into() });
        }
        let cols = [
            cat::HEAD,
            cat::IS_DEFAULT_HEAD,
            cat::TEFF,
            cat::LOGG,
            cat::FEH,
            cat::SNR,
            flags::COLUMN,
            cat::SUCCESS,
            cat::IS_PRIMARY,
            cat::SPECTRUM_ID,
            cat::TEFF_ERR,
            cat::LOGG_ERR,
            cat::FEH_ERR,
            cat::CHI2_RED,
        ];
        let mut batches = Vec::new();
        for f in &files {
            batches.extend(read_all(f, &cols)?);
        }
        let mut heads = std::collections::BTreeSet::new();
        let mut default = None;
        for b in &batches {
            let (names, is_default) = (strings(b.column(0)), bools(b.column(1)));
            if let Some(r) = is_default.iter().position(|d| *d) {
                default = Some(names[r].clone());
            }
            heads.extend(names);
        }
        let chosen = match head {
            Some(h) if heads.contains(h) => h.to_string(),
            Some(h) => {
                let known: Vec<_> = heads.iter().map(String::as_str).collect();
                return Err(ReportError::Read {
                    path: path.to_path_buf(),
                    reason: format!("no head '{h}' in the catalogue (heads: {})", known.join(", ")),
                });
            }
            None => default.or_else(|| heads.iter().next().cloned()).unwrap_or_default(),
        };
        let mut c = Catalog { head: chosen, heads: heads.len(), ..Default::default() };
        for b in &batches {
            let names = strings(b.column(0));
            let (teff, logg, feh, snr) =
                (floats(b.column(2)), floats(b.column(3)), floats(b.column(4)), floats(b.column(5)));
            let flags = b.column(6).as_primitive::<UInt32Type>();
            let (success, primary) = (bools(b.column(7)), bools(b.column(8)));
            let ids = strings(b.column(9));
            let errors = [floats(b.column(10)), floats(b.column(11)), floats(b.column(12))];
            let chi2 = floats(b.column(13));
            for r in 0..b.num_rows() {
                if names[r] != c.head {
                    continue;
                }
                c.rows += 1;
                c.spectrum_id.push(ids[r].clone());
                c.errors.push([errors[0][r], errors[1][r], errors[2][r]]);
                c.chi2_red.push(chi2[r]);
                c.teff.push(teff[r]);
                c.logg.push(logg[r]);
                c.feh.push(feh[r]);
                c.snr.push(snr[r]);
                c.flags.push(flags.value(r));
                c.success.push(success[r]);
                c.primary.push(primary[r]);
            }
        }
        Ok(c)
    }

    /// The row of a spectrum in the chosen head.
    pub fn row_of(&self, spectrum_id: &str) -> Option<usize> {
        self.spectrum_id.iter().position(|s| s == spectrum_id)
    }

    /// (spectrum id, labels) of the given spectra in the chosen head: what a per-star figure
    /// reconstructs. An id the head does not hold, or one without estimates, is an error naming it.
    pub fn labels_of(&self, path: &Path, ids: &[String]) -> Result<Vec<(String, [f64; 3])>, ReportError> {
        ids.iter()
            .map(|id| {
                let r = self.row_of(id).ok_or_else(|| ReportError::Read {
                    path: path.to_path_buf(),
                    reason: format!("no spectrum '{id}' in head {} of the catalogue", self.head),
                })?;
                if !self.success[r] {
                    return Err(ReportError::Read {
                        path: path.to_path_buf(),
                        reason: format!("spectrum '{id}' has no estimates (success is false): nothing to reconstruct"),
                    });
                }
                Ok((id.clone(), [self.teff[r], self.logg[r], self.feh[r]]))
            })
            .collect()
    }
}

/// Inputs of one ingest output directory by level, status and kind of reason.
#[derive(Debug, Default)]
pub struct IngestAccounting {
    pub dir: PathBuf,
    /// (level, status, reason kind) → (count, one full reason as an example)
    pub counts: BTreeMap<(String, String, String), (u64, String)>,
}

impl IngestAccounting {
    pub fn read(dir: &Path) -> Result<IngestAccounting, ReportError> {
        let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ReportError::Read { path: dir.to_path_buf(), reason: e.to_string() })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                crate::artifacts::ShardKind::Report.matches(p.file_name().and_then(|n| n.to_str()).unwrap_or(""))
            })
            .collect();
        parts.sort();
        if parts.is_empty() {
            return Err(ReportError::Read {
                path: dir.to_path_buf(),
                reason: "no ingest report parts (report-*.parquet)".into(),
            });
        }
        let mut acc = IngestAccounting { dir: dir.to_path_buf(), counts: BTreeMap::new() };
        for p in parts {
            for b in read_all(&p, &[ir::LEVEL, ir::STATUS, ir::REASON])? {
                let (l, s, r) = (strings(b.column(0)), strings(b.column(1)), strings(b.column(2)));
                for i in 0..b.num_rows() {
                    let e = acc
                        .counts
                        .entry((l[i].clone(), s[i].clone(), crate::ingest::record::reason_kind(&r[i])))
                        .or_default();
                    e.0 += 1;
                    if e.1.is_empty() {
                        e.1 = r[i].clone();
                    }
                }
            }
        }
        Ok(acc)
    }
}
