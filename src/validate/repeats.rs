//! `starpipe repeats`: label-free checks of a catalogue. Most stars of a release have no reference
//! labels, but some were observed twice, and some by two surveys. For pairs of spectra of one star,
//! (x₁ − x₂)/√2 should scatter like the reported per-spectrum errors, and two surveys should agree
//! on average. This is how DESI's MWS and LAMOST validate their errors (repeat pairs, the robust
//! spread of (x₁ − x₂)/√2 against √((σ₁² + σ₂²)/2)).
//!
//! A star is identified by the catalogue's `star_id` (DESI TARGETID, LAMOST designation; the
//! `source_id` of catalogues written before it existed), or through a star-id table (`source_id` →
//! star id: a Gaia id, a library id) given per catalogue. Repeat pairs: consecutive spectra of one
//! star in one catalogue (by spectrum id), within one head. Cross-survey pairs: the best-S/N
//! spectrum of a star in each of two catalogues, for every pair of heads. Only rows with
//! `success` and finite estimates and errors take part.

use crate::labels::read_table;
use crate::model::{ModelError, PARAMETERS, Result};
use crate::schema::columns::{catalog as cat, normalized_spectra as ns, repeats as rep};
use crate::trust::metrics::{quantile, robust_sigma};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int64Type};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Where a catalogue's star ids come from.
#[derive(Debug, Clone)]
pub struct StarIds {
    pub table: PathBuf,
    /// Column holding the catalogue's `source_id` (default: `source_id`, else `obsid`, else
    /// `targetid`; case-insensitive).
    pub key: Option<String>,
    /// Column holding the star id shared by the spectra of one star.
    pub id_column: String,
}

#[derive(Debug, Clone)]
pub struct RepeatsOptions {
    /// One catalogue (repeats) or two (repeats in each, and pairs between them).
    pub catalogs: Vec<PathBuf>,
    /// None, or one per catalogue.
    pub star_ids: Vec<StarIds>,
    /// Directory for repeats.parquet (schemas/repeats.toml) and repeats.md.
    pub out: PathBuf,
}

/// One line of the report: one kind of pair, one head (pair), one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct PairStats {
    /// `repeat` or `cross`.
    pub kind: &'static str,
    pub catalog_a: String,
    pub catalog_b: String,
    pub head_a: String,
    pub head_b: String,
    pub parameter: &'static str,
    pub unit: &'static str,
    pub n_pairs: usize,
    /// Robust σ (1.4826 MAD) of (x_a − x_b)/√2: the per-spectrum scatter the pairs show.
    pub scatter: f64,
    /// Median of √((σ_a² + σ_b²)/2): the per-spectrum error the catalogue claims.
    pub claimed: f64,
    /// Robust σ of (x_a − x_b)/√(σ_a² + σ_b²): 1 when errors are right.
    pub z_sigma: f64,
    /// Fraction of pairs with |x_a − x_b| < √(σ_a² + σ_b²): 0.68 when errors are right.
    pub within_1sigma: f64,
    /// Median of x_b − x_a (between surveys: the offset of b against a).
    pub median_offset: f64,
}

/// A catalogue row that takes part.
#[derive(Debug, Clone)]
struct Row {
    spectrum_id: String,
    snr: f32,
    value: [f64; 3],
    error: [f64; 3],
}

/// Rows per head, then per star id.
/// Rows by head, then by star key ("id:<n>" from a star-id table, else the catalogue's star_id).
type Stars = BTreeMap<String, BTreeMap<String, Vec<Row>>>;

/// Catalogue files: the file itself, or every leaf Parquet of a HATS directory.
fn catalogue_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('_'))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::bad(path, "no catalogue Parquet file here (a catalog.parquet or a HATS directory)"));
    }
    Ok(files)
}

fn column<'a>(b: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a dyn Array> {
    b.schema()
        .fields()
        .iter()
        .position(|f| f.name().eq_ignore_ascii_case(name))
        .map(|i| b.column(i).as_ref())
        .ok_or_else(|| ModelError::bad(path, format!("no column '{name}'")))
}

/// source_id → star id from a star-id table.
fn read_star_ids(s: &StarIds) -> Result<HashMap<i64, i64>> {
    let batches = read_table(&s.table)?;
    let mut out = HashMap::new();
    for b in &batches {
        let key = match &s.key {
            Some(k) => column(b, k, &s.table)?,
            None => {
                [ns::SOURCE_ID, ns::OBSID, ns::TARGETID].iter().find_map(|k| column(b, k, &s.table).ok()).ok_or_else(
                    || ModelError::bad(&s.table, "no source_id, obsid or targetid column; name it with --star-id-key"),
                )?
            }
        };
        let to_i64 = |a: &dyn Array, what: &str| {
            arrow::compute::cast(a, &DataType::Int64)
                .map_err(|e| ModelError::bad(&s.table, format!("{what} must hold integers: {e}")))
        };
        let key = to_i64(key, "the key column")?;
        let ids = to_i64(column(b, &s.id_column, &s.table)?, &format!("column '{}'", s.id_column))?;
        let (key, ids) = (key.as_primitive::<Int64Type>(), ids.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            if !key.is_null(i) && !ids.is_null(i) {
                out.insert(key.value(i), ids.value(i));
            }
        }
    }
    Ok(out)
}

/// The rows of a catalogue that take part, by head and star.
fn read_catalogue(path: &Path, ids: Option<&HashMap<i64, i64>>) -> Result<Stars> {
    const COLUMNS: [&str; 12] = [
        cat::SOURCE_ID,
        cat::SPECTRUM_ID,
        cat::SNR,
        cat::TEFF,
        cat::TEFF_ERR,
        cat::LOGG,
        cat::LOGG_ERR,
        cat::FEH,
        cat::FEH_ERR,
        cat::SUCCESS,
        cat::MODEL,
        cat::ADAPTER_HASH,
    ];
    let mut stars = Stars::new();
    for file in catalogue_files(path)? {
        let f = std::fs::File::open(&file).map_err(|e| ModelError::io(&file, e))?;
        let pq = |e| ModelError::File(crate::io::FileError::Parquet { path: file.clone(), source: e });
        let has_star_id = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            f.try_clone().map_err(|e| ModelError::io(&file, e))?,
        )
        .map_err(pq)?
        .schema()
        .field_with_name(cat::STAR_ID)
        .is_ok();
        let columns: Vec<&str> = COLUMNS.iter().copied().chain(has_star_id.then_some(cat::STAR_ID)).collect();
        for b in crate::io::read_columns(f, &columns, 65_536).map_err(pq)? {
            let b = b.map_err(|e| ModelError::File(crate::io::FileError::Arrow { path: file.clone(), source: e }))?;
            let src = b.column(0).as_primitive::<Int64Type>();
            let (sid, model, adapter) =
                (b.column(1).as_string::<i32>(), b.column(10).as_string::<i32>(), b.column(11).as_string::<i32>());
            let f32c = |c: usize| b.column(c).as_primitive::<Float32Type>();
            let success = b.column(9).as_boolean();
            let get = |a: &arrow::array::PrimitiveArray<Float32Type>, i: usize| {
                if a.is_null(i) { f64::NAN } else { a.value(i) as f64 }
            };
            for i in 0..b.num_rows() {
                if !success.value(i) || src.is_null(i) {
                    continue;
                }
                let star = match ids {
                    Some(map) => match map.get(&src.value(i)) {
                        Some(s) => format!("id:{s}"),
                        None => continue,
                    },
                    None if has_star_id => b.column(12).as_string::<i32>().value(i).to_string(),
                    None => src.value(i).to_string(),
                };
                let value = [3, 5, 7].map(|c| get(f32c(c), i));
                let error = [4, 6, 8].map(|c| get(f32c(c), i));
                if value.iter().chain(&error).any(|v| !v.is_finite()) {
                    continue;
                }
                let head = format!("{} {}", model.value(i), adapter.value(i)).trim().to_string();
                let row = Row { spectrum_id: sid.value(i).to_string(), snr: f32c(2).value(i), value, error };
                stars.entry(head).or_default().entry(star).or_default().push(row);
            }
        }
    }
    for by_star in stars.values_mut() {
        for rows in by_star.values_mut() {
            rows.sort_by(|a, b| a.spectrum_id.cmp(&b.spectrum_id));
        }
    }
    Ok(stars)
}

/// Statistics of pairs (a, b) for one parameter.
fn pair_stats(pairs: &[(&Row, &Row)], p: usize) -> (f64, f64, f64, f64, f64) {
    let diff: Vec<f64> = pairs.iter().map(|(a, b)| b.value[p] - a.value[p]).collect();
    let combined: Vec<f64> = pairs.iter().map(|(a, b)| a.error[p].hypot(b.error[p])).collect();
    let half: Vec<f64> = diff.iter().map(|d| d / std::f64::consts::SQRT_2).collect();
    let z: Vec<f64> = diff.iter().zip(&combined).map(|(d, e)| d / e).collect();
    let mut claimed: Vec<f64> = combined.iter().map(|e| e / std::f64::consts::SQRT_2).collect();
    let mut offsets = diff.clone();
    let within = z.iter().filter(|z| z.abs() < 1.0).count() as f64 / z.len() as f64;
    (robust_sigma(&half), quantile(&mut claimed, 0.5), robust_sigma(&z), within, quantile(&mut offsets, 0.5))
}

fn stats_rows(kind: &'static str, cats: [&str; 2], heads: [&str; 2], pairs: &[(&Row, &Row)]) -> Vec<PairStats> {
    if pairs.is_empty() {
        return Vec::new();
    }
    PARAMETERS
        .iter()
        .enumerate()
        .map(|(p, param)| {
            let (scatter, claimed, z_sigma, within_1sigma, median_offset) = pair_stats(pairs, p);
            PairStats {
                kind,
                catalog_a: cats[0].into(),
                catalog_b: cats[1].into(),
                head_a: heads[0].into(),
                head_b: heads[1].into(),
                parameter: param.name(),
                unit: param.unit(),
                n_pairs: pairs.len(),
                scatter,
                claimed,
                z_sigma,
                within_1sigma,
                median_offset,
            }
        })
        .collect()
}

/// Repeat and cross-survey statistics of the catalogues.
pub fn pair_statistics(opts: &RepeatsOptions) -> Result<Vec<PairStats>> {
    if opts.catalogs.is_empty() || opts.catalogs.len() > 2 {
        return Err(ModelError::Invalid("give one catalogue (repeats) or two (repeats and cross-survey pairs)".into()));
    }
    if !opts.star_ids.is_empty() && opts.star_ids.len() != opts.catalogs.len() {
        return Err(ModelError::Invalid(format!(
            "{} star-id tables for {} catalogues: give one per catalogue, in the same order",
            opts.star_ids.len(),
            opts.catalogs.len()
        )));
    }
    let mut catalogues = Vec::new();
    for (k, path) in opts.catalogs.iter().enumerate() {
        let ids = opts.star_ids.get(k).map(read_star_ids).transpose()?;
        catalogues.push((path.display().to_string(), read_catalogue(path, ids.as_ref())?));
    }
    let mut out = Vec::new();
    for (name, stars) in &catalogues {
        for (head, by_star) in stars {
            let pairs: Vec<(&Row, &Row)> =
                by_star.values().flat_map(|rows| rows.windows(2).map(|w| (&w[0], &w[1]))).collect();
            out.extend(stats_rows("repeat", [name, name], [head, head], &pairs));
        }
    }
    if let [(name_a, a), (name_b, b)] = catalogues.as_slice() {
        let best = |rows: &[Row]| -> usize {
            (0..rows.len()).max_by(|&i, &j| rows[i].snr.total_cmp(&rows[j].snr).then(j.cmp(&i))).unwrap_or(0)
        };
        for (head_a, stars_a) in a {
            for (head_b, stars_b) in b {
                let pairs: Vec<(&Row, &Row)> = stars_a
                    .iter()
                    .filter_map(|(star, ra)| stars_b.get(star).map(|rb| (&ra[best(ra)], &rb[best(rb)])))
                    .collect();
                out.extend(stats_rows("cross", [name_a, name_b], [head_a, head_b], &pairs));
            }
        }
    }
    if out.is_empty() {
        return Err(ModelError::Invalid(format!(
            "no pair of spectra of one star: no source_id (or star id) occurs twice among successful rows. {HOW_TO_PAIR}"
        )));
    }
    Ok(out)
}

const HOW_TO_PAIR: &str = "A LAMOST obsid is one spectrum and the two surveys key stars differently (LAMOST \
     designation, DESI TARGETID): pair them through a shared id with --star-ids TABLE… --star-id-column COLUMN, one \
     table per catalogue mapping its source_id to e.g. the Gaia source_id (DESI: the catalogue's gaia_source_id; \
     LAMOST: the LRS catalogue's obsid → gaia_source_id).";

/// Said when two catalogues were given and no star is in both: without a shared star id the
/// surveys' keys never meet, and an empty comparison must not read as agreement.
pub fn cross_survey_note(opts: &RepeatsOptions, stats: &[PairStats]) -> Option<String> {
    (opts.catalogs.len() == 2 && !stats.iter().any(|r| r.kind == "cross")).then(|| {
        format!(
            "no cross-survey pair: no star of {} is in {} under the star keys used. {HOW_TO_PAIR}",
            opts.catalogs[0].display(),
            opts.catalogs[1].display()
        )
    })
}

/// Runs the checks and writes `repeats.parquet` and `repeats.md` into `opts.out`.
pub fn run_repeats(opts: &RepeatsOptions) -> Result<Vec<PairStats>> {
    let stats = pair_statistics(opts)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| ModelError::io(&opts.out, e))?;
    write_parquet(&opts.out.join(crate::artifacts::layout::REPEATS_TABLE), &stats)?;
    let md = opts.out.join(crate::artifacts::layout::REPEATS_MARKDOWN);
    let mut text = markdown(&stats);
    if let Some(note) = cross_survey_note(opts, &stats) {
        text += &format!("\n**Note:** {note}\n");
    }
    crate::io::write_bytes_atomically(&md, text.as_bytes())?;
    Ok(stats)
}

/// The report as a Markdown table.
pub fn markdown(stats: &[PairStats]) -> String {
    let mut s = String::from(
        "| pairs | heads | parameter | N | scatter (x₁−x₂)/√2 | claimed σ | scatter / claimed | σ of z | \\|z\\| < 1 | median offset |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in stats {
        let heads = if r.head_a == r.head_b { r.head_a.clone() } else { format!("{} vs {}", r.head_a, r.head_b) };
        let name = |p: &str| Path::new(p).file_name().map_or(p.to_string(), |n| n.to_string_lossy().into_owned());
        let pairs = match r.kind {
            "cross" => format!("cross {} → {}", name(&r.catalog_a), name(&r.catalog_b)),
            kind => format!("{kind} {}", name(&r.catalog_a)),
        };
        s += &format!(
            "| {} | {} | {} ({}) | {} | {:.4} | {:.4} | {:.2} | {:.2} | {:.2} | {:+.4} |\n",
            pairs,
            heads,
            r.parameter,
            r.unit,
            r.n_pairs,
            r.scatter,
            r.claimed,
            r.scatter / r.claimed,
            r.z_sigma,
            r.within_1sigma,
            r.median_offset
        );
    }
    s
}

fn write_parquet(path: &Path, stats: &[PairStats]) -> Result<()> {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let schema = crate::schema::repeats().to_arrow(0);
    let strings = |f: &dyn Fn(&PairStats) -> &str| -> ArrayRef {
        Arc::new(stats.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let floats = |f: &dyn Fn(&PairStats) -> f64| -> ArrayRef {
        Arc::new(stats.iter().map(|r| Some(f(r))).collect::<Float64Array>())
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            rep::KIND => strings(&|r| r.kind),
            rep::CATALOG_A => strings(&|r| &r.catalog_a),
            rep::CATALOG_B => strings(&|r| &r.catalog_b),
            rep::HEAD_A => strings(&|r| &r.head_a),
            rep::HEAD_B => strings(&|r| &r.head_b),
            rep::PARAMETER => strings(&|r| r.parameter),
            rep::UNIT => strings(&|r| r.unit),
            rep::N_PAIRS => Arc::new(stats.iter().map(|r| Some(r.n_pairs as i64)).collect::<Int64Array>()),
            rep::SCATTER => floats(&|r| r.scatter),
            rep::CLAIMED_ERROR => floats(&|r| r.claimed),
            rep::Z_SIGMA => floats(&|r| r.z_sigma),
            rep::WITHIN_1SIGMA => floats(&|r| r.within_1sigma),
            rep::MEDIAN_OFFSET => floats(&|r| r.median_offset),
            other => panic!("column '{other}' of schemas/repeats.toml has no writer"),
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns)
        .map_err(|e| ModelError::File(crate::io::FileError::Arrow { path: path.into(), source: e }))?;
    crate::io::write_small_table(path, &batch).map_err(|e| ModelError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, snr: f32, value: [f64; 3], error: [f64; 3]) -> Row {
        Row { spectrum_id: id.into(), snr, value, error }
    }

    #[test]
    fn honest_errors_give_unit_z_and_two_thirds_within_one_sigma() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = Normal::new(0.0, 1.0).unwrap();
        // Spectrum errors of 50 K, 0.1, 0.05 dex; true scatter twice that for [Fe/H].
        let rows: Vec<(Row, Row)> = (0..5000)
            .map(|i| {
                let mut draw =
                    |k: f64| [50.0 * n.sample(&mut rng), 0.1 * n.sample(&mut rng), k * 0.05 * n.sample(&mut rng)];
                let (a, b) = (draw(2.0), draw(2.0));
                let err = [50.0, 0.1, 0.05];
                (
                    row(&format!("{i}a"), 30.0, [5000.0 + a[0], 4.0 + a[1], a[2]], err),
                    row(&format!("{i}b"), 30.0, [5000.0 + b[0], 4.03 + b[1], b[2]], err),
                )
            })
            .collect();
        let pairs: Vec<(&Row, &Row)> = rows.iter().map(|(a, b)| (a, b)).collect();
        let (scatter, claimed, z, within, offset) = pair_stats(&pairs, 0);
        assert!((scatter - 50.0).abs() < 2.5 && (claimed - 50.0).abs() < 1e-9, "{scatter} {claimed}");
        assert!((z - 1.0).abs() < 0.05 && (within - 0.6827).abs() < 0.02, "{z} {within}");
        assert!(offset.abs() < 3.0, "offset {offset}");
        let (_, _, _, _, offset) = pair_stats(&pairs, 1);
        assert!((offset - 0.03).abs() < 0.005, "log g offset {offset}");
        let (scatter, _, z, within, _) = pair_stats(&pairs, 2);
        assert!((scatter - 0.1).abs() < 0.005 && (z - 2.0).abs() < 0.1 && within < 0.45, "{scatter} {z} {within}");
    }
}
