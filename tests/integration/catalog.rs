//! `starpipe catalog` as a user runs it, on the mock DESI survey of the models fixture with two
//! heads (zero-shot and LoRA); the HATS output and the README queries are checked in Python.

use crate::common::*;
use crate::models::{fixture, ok, overlap_mocks, run};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Prediction directories of the two heads, made once.
pub(crate) fn heads() -> &'static (PathBuf, PathBuf) {
    static H: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    H.get_or_init(|| {
        let f = fixture();
        let zero = f.p("cat-pred-zeroshot");
        let lora = f.p("cat-pred-lora");
        ok(run(&["infer"], &[("--spectra", &f.p("desi")), ("--model", &f.p("model")), ("--out", &zero)]));
        ok(run(
            &["infer"],
            &[
                ("--spectra", &f.p("desi")),
                ("--model", &f.p("model")),
                ("--adapter", &f.p("adapter-lora")),
                ("--out", &lora),
            ],
        ));
        (zero, lora)
    })
}

fn catalog(out: &Path, extra: &[&str], spectra: &Path, predictions: &[&Path]) -> String {
    let mut args = vec!["catalog"];
    args.extend_from_slice(extra);
    let mut paths: Vec<(&str, &Path)> = vec![("--spectra", spectra), ("--out", out)];
    for p in predictions {
        paths.push(("--predictions", p));
    }
    ok(run(&args, &paths))
}

fn read(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

#[test]
fn catalog_rows_columns_flags_and_metadata() {
    let f = fixture();
    let (zero, lora) = heads();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.parquet");
    let stdout = catalog(&path, &[], &f.p("desi"), &[zero, lora]);
    assert!(stdout.contains("catalog:"), "{stdout}");
    let df = read(&path);
    let spectra = read_spectra(&f.p("desi")).height();
    assert_eq!(df.height(), 2 * spectra, "one row per spectrum and head");
    let schema = starpipe::schema::catalog();
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(names, schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());

    let flags: Vec<u32> = df.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
    let success: Vec<bool> = df.column("success").unwrap().bool().unwrap().iter().map(|v| v.unwrap()).collect();
    let teff: Vec<Option<f32>> = df.column("teff").unwrap().f32().unwrap().iter().collect();
    for i in 0..df.height() {
        assert_eq!(success[i], flags[i] < 1 << 16, "success is the usable cut");
        assert_eq!(teff[i].is_some(), success[i], "estimates exist exactly for successful rows");
        assert_eq!(flags[i] >> 31, 0);
    }
    assert!(success.iter().all(|s| *s), "every mock DESI star has a prediction and is a STAR");
    // Mock spectra span S/N 20-150: nothing is LOW_SNR; errors are present for every row.
    assert!(flags.iter().all(|f| f & (1 << 8) == 0), "no LOW_SNR");
    let h: Vec<i64> = df.column("_healpix_29").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert!(h.windows(2).all(|w| w[0] <= w[1]), "rows sorted by _healpix_29");
    let adapters = strings(&df, "adapter");
    assert_eq!(adapters.iter().filter(|a| *a == "lora").count(), spectra);
    assert_eq!(adapters.iter().filter(|a| *a == "zeroshot").count(), spectra);
    assert!(df.column("is_primary").unwrap().bool().unwrap().iter().all(|p| p == Some(true)));

    // Units, UCDs and descriptions on the fields; VOParquet and starpipe keys on the file.
    let file = std::fs::File::open(&path).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let field = builder.schema().field_with_name("teff").unwrap().clone();
    assert_eq!(field.metadata().get("unit").map(String::as_str), Some("K"));
    assert_eq!(field.metadata().get("ucd").map(String::as_str), Some("phys.temperature.effective"));
    assert_eq!(
        builder.schema().field_with_name("quality_flags").unwrap().data_type(),
        &arrow::datatypes::DataType::UInt32
    );
    let kv = starpipe::io::read_key_value_metadata(&path).unwrap();
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("IVOA.VOTable-Parquet.version"), "1.0");
    assert!(
        get("IVOA.VOTable-Parquet.content")
            .contains("<FIELD name=\"feh\" datatype=\"float\" unit=\"dex\" ucd=\"phys.abund.Fe\">")
    );
    let meta: serde_json::Value = serde_json::from_str(&get("starpipe")).unwrap();
    assert_eq!(meta["flag_bits"]["LARGE_ERR"]["bit"], 13);
    assert_eq!(meta["cuts"]["basic"]["sql"], "quality_flags < 256");
    assert_eq!(meta["thresholds"]["min_snr"], 10.0);
    assert!(meta["heads"][0]["ood_threshold"].as_f64().unwrap() > 0.0);
    // The same in the Arrow schema's metadata, which pyarrow and Polars show.
    let in_schema = builder.schema().metadata().get("starpipe").cloned().unwrap_or_default();
    assert_eq!(in_schema, get("starpipe"), "flag bits in the Arrow schema metadata too");
    assert_eq!(meta["flag_bits"]["NO_CLASS"]["bit"], 3);

    // The same inputs give the same bytes.
    let again = dir.path().join("again.parquet");
    catalog(&again, &[], &f.p("desi"), &[zero, lora]);
    assert!(std::fs::read(&path).unwrap() == std::fs::read(&again).unwrap(), "catalogue bytes differ between runs");
}

#[test]
fn hats_directory_and_readme_queries_check_out_in_python() {
    let f = fixture();
    let (zero, lora) = heads();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("catalog.parquet");
    let hats = dir.path().join("hats");
    catalog(&single, &[], &f.p("desi"), &[zero, lora]);
    let fits = dir.path().join("catalog.fits");
    catalog(&fits, &["--format", "fits"], &f.p("desi"), &[zero, lora]);
    // A 60″ margin: wide enough that the mock's stars lie near partition edges.
    let stdout = catalog(
        &hats,
        &["--format", "hats", "--max-rows", "60", "--margin-threshold", "60"],
        &f.p("desi"),
        &[zero, lora],
    );
    assert!(stdout.contains("margin cache (60″"), "{stdout}");
    assert!(!stdout.contains(" 1 partition(s)"), "{stdout}");
    assert!(!starpipe::io::tmp_path(&hats).exists(), "temporary directory left behind");
    let python = python("duckdb, astropy, hats, polars, pyarrow");
    let result = Command::new(&python)
        .arg(data("../python/check_catalog.py"))
        .arg(&single)
        .arg(&hats)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .arg(f.p("desi-files/labels.parquet"))
        .arg(&fits)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success() && text.contains("ok:"), "{text}");

    // The margin cache: valid, the rows hats-import's rule picks, and what LSDB needs to match
    // sources across partition edges.
    let result = Command::new(crate::common::python("hats, lsdb"))
        .arg(data("../python/check_margin.py"))
        .arg(&hats)
        .arg(dir.path().join("hats_60arcs"))
        .arg("60")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success() && text.contains("ok:"), "{text}");

    // Every published cut, as DuckDB SQL, Polars and pandas, keeps exactly the rows its words
    // promise, on the catalogue and on one with every flag bit present; the README prints them.
    let result = Command::new(&python)
        .arg(data("../python/check_cuts.py"))
        .arg(&single)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success() && text.contains("ok:"), "{text}");
}

/// LAMOST spectrum files carry no Gaia id: in FITS the null ids are the TNULL value (−1), masked
/// by astropy, never 0, which a join would take for an id.
#[test]
fn null_ids_of_real_lamost_spectra_are_tnull_in_fits() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (spectra, pred, cat) = (dir.path().join("spectra"), dir.path().join("pred"), dir.path().join("c.fits"));
    ok(run(
        &["ingest", "--survey", "lamost", "--grid", "specclip", "--no-progress"],
        &[("--input", &data("real/lamost")), ("--out", &spectra)],
    ));
    ok(run(&["infer"], &[("--spectra", &spectra), ("--model", &f.p("model")), ("--out", &pred)]));
    catalog(&cat, &["--format", "fits"], &spectra, &[&pred]);
    let mut file = fitsio::FitsFile::open(&cat).unwrap();
    let hdu = file.hdu("CATALOG").unwrap();
    let names: Vec<String> = starpipe::schema::catalog().columns.iter().map(|c| c.name.clone()).collect();
    for name in ["gaia_source_id", "ref_id"] {
        let ids: Vec<i64> = hdu.read_col(&mut file, name).unwrap();
        assert!(!ids.is_empty() && ids.iter().all(|&v| v == -1), "{name}: {ids:?}");
        let k = 1 + names.iter().position(|n| n == name).unwrap();
        let tnull: i64 = hdu.read_key(&mut file, &format!("TNULL{k}")).unwrap();
        assert_eq!(tnull, -1, "{name}");
    }
}

#[test]
fn spectra_without_predictions_are_kept_and_flagged_bad_input() {
    let f = fixture();
    let (zero, _) = heads();
    let dir = tempfile::tempdir().unwrap();
    // Two shards (the same spectra under two names); predictions exist only for the first.
    let shards = dir.path().join("shards");
    let preds = dir.path().join("preds");
    std::fs::create_dir_all(&shards).unwrap();
    std::fs::create_dir_all(&preds).unwrap();
    let name = std::fs::read_dir(f.p("desi"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("spectra-"))
        .unwrap();
    let pred_name = format!("predictions-{}", name.strip_prefix("spectra-").unwrap());
    std::fs::copy(f.p("desi").join(&name), shards.join("spectra-a.parquet")).unwrap();
    std::fs::copy(f.p("desi").join(&name), shards.join("spectra-b.parquet")).unwrap();
    std::fs::copy(zero.join(&pred_name), preds.join("predictions-a.parquet")).unwrap();
    let path = dir.path().join("c.parquet");
    catalog(&path, &[], &shards, &[&preds]);
    let df = read(&path);
    let n = read_spectra(&f.p("desi")).height();
    assert_eq!(df.height(), 2 * n);
    let flags: Vec<u32> = df.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
    let bad_input = 1 << 17;
    assert_eq!(flags.iter().filter(|f| *f & bad_input != 0).count(), n, "shard b has no predictions");
    let teff: Vec<Option<f32>> = df.column("teff").unwrap().f32().unwrap().iter().collect();
    assert!(
        flags.iter().zip(&teff).all(|(f, t)| (f & bad_input != 0) == t.is_none()),
        "BAD_INPUT rows have no estimates"
    );
}

/// The real MWS star in `coadd-sv3-bright-10145.fits` (no redrock file beside it) is selected by
/// its targeting bits; the catalogue publishes its estimates with NO_CLASS, never NOT_STAR, and
/// sets no bit from a value that does not exist.
#[test]
fn a_real_desi_star_without_redrock_gets_estimates_and_no_class() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(data("real/desi/coadd-sv3-bright-10145.fits"), input.join("coadd-sv3-bright-10145.fits")).unwrap();
    let (spectra, pred, cat) = (dir.path().join("spectra"), dir.path().join("pred"), dir.path().join("c.parquet"));
    ok(run(
        &["ingest", "--survey", "desi", "--grid", "specclip", "--no-progress"],
        &[("--input", &input), ("--out", &spectra)],
    ));
    ok(run(&["infer"], &[("--spectra", &spectra), ("--model", &f.p("model")), ("--out", &pred)]));
    catalog(&cat, &[], &spectra, &[&pred]);
    let df = read(&cat);
    assert_eq!(df.height(), 1, "the one MWS star");
    let flags = df.column("quality_flags").unwrap().u32().unwrap().get(0).unwrap();
    let no_class = 1 << 3;
    assert!(flags & no_class != 0 && flags < 1 << 16, "flags {flags}");
    assert!(df.column("success").unwrap().bool().unwrap().get(0).unwrap());
    for c in ["teff", "teff_err", "logg", "feh"] {
        assert!(df.column(c).unwrap().f32().unwrap().get(0).is_some(), "{c} is published");
    }
    assert_eq!(df.column("input_class").unwrap().str().unwrap().get(0), Some("UNKNOWN"));
}

/// A FITS catalogue defines its flag bits in the file itself, and the report, which reads Parquet,
/// says so instead of failing on a Parquet footer.
#[test]
fn a_fits_catalogue_carries_its_flag_bits_and_the_report_refuses_it_clearly() {
    let f = fixture();
    let (zero, _) = heads();
    let dir = tempfile::tempdir().unwrap();
    let fits = dir.path().join("c.fits");
    let stdout = catalog(&fits, &["--format", "fits"], &f.p("desi"), &[zero]);
    assert!(stdout.contains("astropy") && !stdout.contains("duckdb"), "the hint reads FITS: {stdout}");
    let mut file = fitsio::FitsFile::open(&fits).unwrap();
    let hdu = file.hdu("FLAG_BITS").unwrap();
    let names: Vec<String> = hdu.read_col(&mut file, "NAME").unwrap();
    assert_eq!(names.len(), starpipe::catalog::flags::ALL.len());
    assert_eq!(names[3].trim(), "NO_CLASS");
    let out = run(&["report"], &[("--catalog", &fits), ("--out", &dir.path().join("report"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("c.fits") && err.contains("Parquet catalogue or a HATS"), "{err}");
}

/// Bytes do not depend on the order the shards are given in, and `is_primary` picks the best
/// spectrum of a source seen twice: the real LAMOST OBSID 101005, shipped in both layouts.
#[test]
fn input_order_does_not_change_the_bytes_and_repeats_have_one_primary() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (spectra, pred) = (dir.path().join("spectra"), dir.path().join("pred"));
    ok(run(
        &["ingest", "--survey", "lamost", "--grid", "specclip", "--shard-size", "3", "--no-progress"],
        &[("--input", &data("real/lamost")), ("--out", &spectra)],
    ));
    ok(run(&["infer"], &[("--spectra", &spectra), ("--model", &f.p("model")), ("--out", &pred)]));
    let mut shards: Vec<PathBuf> = std::fs::read_dir(&spectra)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("spectra-"))
        .collect();
    shards.sort();
    assert!(shards.len() >= 3, "{shards:?}");
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    catalog(&a, &[], &spectra, &[&pred]);
    shards.reverse();
    let mut args: Vec<(&str, &Path)> = shards.iter().map(|s| ("--spectra", s.as_path())).collect();
    args.extend([("--predictions", pred.as_path()), ("--out", b.as_path())]);
    ok(run(&["catalog"], &args));
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "shard order changed the catalogue bytes");

    let df = read(&a);
    let src: Vec<i64> = df.column("source_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    let primary: Vec<bool> = df.column("is_primary").unwrap().bool().unwrap().iter().map(|b| b == Some(true)).collect();
    let snr: Vec<f32> = df.column("snr").unwrap().f32().unwrap().into_no_null_iter().collect();
    let repeat: Vec<usize> = (0..df.height()).filter(|&k| src[k] == 101005).collect();
    assert_eq!(repeat.len(), 2, "OBSID 101005 in both layouts");
    assert_eq!(repeat.iter().filter(|&&k| primary[k]).count(), 1, "one primary per source");
    let best = *repeat.iter().max_by(|&&x, &&y| snr[x].total_cmp(&snr[y])).unwrap();
    assert!(primary[best], "the primary is the better S/N spectrum");
    let singles = (0..df.height()).filter(|&k| src[k] != 101005);
    assert!(singles.clone().all(|k| primary[k]) && singles.count() > 0);
}

/// The per-star table on a mock release whose pixels are partly observed twice (bright and dark
/// programs): one row per TARGETID and head, the mean and error recomputed here from the
/// per-spectrum rows, identifiers carried from the FIBERMAP, the same stars in every format, and
/// the same bytes whatever the order of the inputs.
#[test]
fn per_star_table_combines_repeat_spectra_and_carries_identifiers() {
    use starpipe::mock::desi::{generate_desi, mock_gaia_source_id, write_desi_labels};
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let snr = starpipe::mock::lamost::SnrDistribution { min: 15.0, max: 80.0 };
    let rows = generate_desi(
        &p("files"),
        starpipe::mock::Stars::builtin(),
        40,
        16,
        9,
        snr,
        0.0,
        &starpipe::mock::desi::DesiExtras { revisit_fraction: 0.5, overlap: None },
        &|| {},
    )
    .unwrap();
    write_desi_labels(&p("files"), &rows).unwrap();
    ok(run(
        &["ingest", "--survey", "desi", "--grid", "specclip", "--shard-size", "20", "--no-progress"],
        &[("--input", &p("files")), ("--out", &p("spectra"))],
    ));
    ok(run(&["infer"], &[("--spectra", &p("spectra")), ("--model", &f.p("model")), ("--out", &p("pred"))]));
    catalog(&p("spectra.parquet"), &[], &p("spectra"), &[&p("pred")]);
    let stdout = catalog(&p("stars.parquet"), &["--per-star"], &p("spectra"), &[&p("pred")]);
    assert!(stdout.contains("star rows from"), "{stdout}");
    let spectra = read(&p("spectra.parquet"));
    let stars = read(&p("stars.parquet"));
    let names: Vec<String> = stars.get_column_names().iter().map(|s| s.to_string()).collect();
    let schema = starpipe::schema::catalog_stars();
    assert_eq!(names, schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());

    // Identifiers in the per-spectrum catalogue: the mock's Gaia ids, survey, program and pixel.
    let tid: Vec<i64> = spectra.column("source_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    let gaia: Vec<Option<i64>> = spectra.column("gaia_source_id").unwrap().i64().unwrap().iter().collect();
    assert!(tid.iter().zip(&gaia).all(|(t, g)| *g == Some(mock_gaia_source_id(*t))));
    assert!(strings(&spectra, "ref_cat").iter().all(|c| c == "G2"));
    assert!(strings(&spectra, "desi_survey").iter().all(|c| c == "main"));
    let programs = strings(&spectra, "desi_program");
    assert!(programs.iter().any(|c| c == "dark") && programs.iter().any(|c| c == "bright"), "both visits ingested");
    let hpx: Vec<i32> = spectra.column("healpix").unwrap().i32().unwrap().into_no_null_iter().collect();
    let label_hpx: std::collections::HashMap<i64, u64> = rows.iter().map(|r| (r.targetid, r.healpix)).collect();
    assert!(tid.iter().zip(&hpx).all(|(t, h)| label_hpx[t] == *h as u64));

    // One row per star; repeats have one primary each.
    let ids = strings(&spectra, "star_id");
    let mut per_star: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, id) in ids.iter().enumerate() {
        per_star.entry(id).or_default().push(i);
    }
    assert_eq!(stars.height(), per_star.len());
    assert!(per_star.values().any(|v| v.len() == 2), "revisited pixels give repeat spectra");
    let primary: Vec<bool> =
        spectra.column("is_primary").unwrap().bool().unwrap().iter().map(|b| b == Some(true)).collect();
    assert!(per_star.values().all(|v| v.iter().filter(|&&i| primary[i]).count() == 1));

    // The combined estimate, recomputed from the per-spectrum rows (this head has no error floor:
    // a plain inverse-variance mean over the good spectra, or the best one when none is good).
    let f32s = |df: &DataFrame, c: &str| -> Vec<Option<f32>> { df.column(c).unwrap().f32().unwrap().iter().collect() };
    let (teff, teff_err, snr) = (f32s(&spectra, "teff"), f32s(&spectra, "teff_err"), f32s(&spectra, "snr"));
    let flags: Vec<u32> = spectra.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
    let star_ids = strings(&stars, "star_id");
    let n_used: Vec<i32> = stars.column("n_used").unwrap().i32().unwrap().into_no_null_iter().collect();
    let n_spectra: Vec<i32> = stars.column("n_spectra").unwrap().i32().unwrap().into_no_null_iter().collect();
    let (s_teff, s_err) = (f32s(&stars, "teff"), f32s(&stars, "teff_err"));
    let best_ids = strings(&stars, "best_spectrum_id");
    let spectrum_ids = strings(&spectra, "spectrum_id");
    let mut checked_means = 0;
    for (k, id) in star_ids.iter().enumerate() {
        let members = &per_star[id.as_str()];
        assert_eq!(n_spectra[k] as usize, members.len());
        let good: Vec<usize> = members.iter().copied().filter(|&i| flags[i] < 256).collect();
        let best = *members.iter().max_by(|&&a, &&b| snr[a].unwrap().total_cmp(&snr[b].unwrap())).unwrap();
        assert_eq!(best_ids[k], spectrum_ids[best]);
        let used = if good.is_empty() { vec![best] } else { good };
        assert_eq!(n_used[k] as usize, used.len(), "star {id}");
        let w: Vec<f64> = used.iter().map(|&i| 1.0 / (teff_err[i].unwrap() as f64).powi(2)).collect();
        let mean = used.iter().zip(&w).map(|(&i, w)| teff[i].unwrap() as f64 * w).sum::<f64>() / w.iter().sum::<f64>();
        let err = (1.0 / w.iter().sum::<f64>()).sqrt();
        assert!((s_teff[k].unwrap() as f64 - mean).abs() < 0.05, "star {id}: {:?} vs {mean}", s_teff[k]);
        assert!((s_err[k].unwrap() as f64 - err).abs() < 0.05, "star {id}: {:?} vs {err}", s_err[k]);
        checked_means += usize::from(used.len() == 2);
    }
    assert!(checked_means > 0, "some stars combine two good spectra");

    // `repeats` finds the same pairs by the catalogue's star_id, without a star-id table.
    ok(run(&["repeats"], &[("--catalog", &p("spectra.parquet")), ("--out", &p("repeats"))]));
    let pairs = read(&p("repeats/repeats.parquet"));
    let n_pairs: Vec<i64> = pairs.column("n_pairs").unwrap().i64().unwrap().into_no_null_iter().collect();
    let twice = per_star.values().filter(|v| v.len() == 2).count() as i64;
    assert!(n_pairs.iter().all(|&n| n == twice), "{n_pairs:?} pairs, {twice} stars seen twice");

    // HATS and FITS hold the same stars; the bytes do not depend on the input order.
    let hats = p("stars-hats");
    catalog(&hats, &["--per-star", "--format", "hats", "--max-rows", "20"], &p("spectra"), &[&p("pred")]);
    let leaves: usize = walkdir::WalkDir::new(hats.join("dataset"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("Npix="))
        .map(|e| read(e.path()).height())
        .sum();
    assert_eq!(leaves, stars.height());
    let props = std::fs::read_to_string(hats.join("hats.properties")).unwrap();
    assert!(props.contains(&format!("hats_nrows={}\n", stars.height())), "{props}");
    // By default a 5″ margin cache is written beside it.
    let margin = std::fs::read_to_string(p("stars-hats_5arcs/hats.properties")).unwrap();
    assert!(margin.contains("dataproduct_type=margin\nhats_primary_table_url=stars-hats\n"), "{margin}");
    catalog(&p("stars.fits"), &["--per-star", "--format", "fits"], &p("spectra"), &[&p("pred")]);
    // astropy with its defaults reads the per-star table without a warning, units applied and no
    // string cut short (best_spectrum_id takes spectrum_id's width).
    let script = format!(
        "import warnings\nimport astropy.units as u\nimport pyarrow.parquet as pq\nfrom astropy.table import Table\n\
         warnings.simplefilter('error')\nt = Table.read('{path}')\n\
         assert t['feh_err'].unit == u.dex and t['teff'].unit == u.K, (t['feh_err'].unit, t['teff'].unit)\n\
         assert list(t['best_spectrum_id']) == pq.read_table('{path}').column('best_spectrum_id').to_pylist()\n\
         print('ok', len(t))",
        path = p("stars.parquet").display()
    );
    let out = Command::new(python("astropy, pyarrow")).args(["-c", &script]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.starts_with("ok"), "{text}");
    let mut shards: Vec<PathBuf> = std::fs::read_dir(p("spectra"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("spectra-"))
        .collect();
    shards.sort();
    shards.reverse();
    assert!(shards.len() >= 2);
    let (again, pred) = (p("again.parquet"), p("pred"));
    let mut args: Vec<(&str, &Path)> = shards.iter().map(|s| ("--spectra", s.as_path())).collect();
    args.extend([("--predictions", pred.as_path()), ("--out", again.as_path())]);
    ok(run(&["catalog", "--per-star"], &args));
    assert!(std::fs::read(p("stars.parquet")).unwrap() == std::fs::read(&again).unwrap(), "input order changed bytes");
}

/// A DESI mock that observes stars of a LAMOST mock (`mock --overlap`): shared stars carry the
/// LAMOST star's true labels and mock Gaia id (REF_ID → the catalogue's gaia_source_id), and
/// `repeats` pairs them across the two catalogues through the label tables' gaia_source_id.
#[test]
fn an_overlap_mock_pairs_stars_across_surveys_by_gaia_id() {
    use starpipe::mock::lamost::mock_lamost_gaia_id;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    overlap_mocks(dir.path(), 100, 40, 20, 0.5);
    let lamost_labels = read(&p("lamost-files/labels.parquet"));
    let desi_labels = read(&p("desi-files/labels.parquet"));
    let truth: std::collections::HashMap<i64, f64> = lamost_labels
        .column("gaia_source_id")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .zip(lamost_labels.column("teff_true").unwrap().f64().unwrap().into_no_null_iter())
        .collect();
    let gaia: Vec<Option<i64>> = desi_labels.column("GAIA_SOURCE_ID").unwrap().i64().unwrap().iter().collect();
    let teff: Vec<Option<f64>> = desi_labels.column("TEFF_TRUE").unwrap().f64().unwrap().iter().collect();
    let shared: Vec<usize> = (0..gaia.len()).filter(|&i| gaia[i].is_some_and(|g| truth.contains_key(&g))).collect();
    let stars = teff.iter().filter(|t| t.is_some()).count();
    assert!(!shared.is_empty() && shared.len() < stars, "{} of {stars} DESI stars shared", shared.len());
    assert!(shared.iter().all(|&i| teff[i] == Some(truth[&gaia[i].unwrap()])), "shared stars keep their labels");

    for (survey, files, spectra) in [("lamost", "lamost-files", "lamost"), ("desi", "desi-files", "desi")] {
        ok(run(
            &["ingest", "--survey", survey, "--grid", "specclip", "--no-progress"],
            &[("--input", &p(files)), ("--out", &p(spectra))],
        ));
        let pred = p(&format!("pred-{survey}"));
        ok(run(&["infer"], &[("--spectra", &p(spectra)), ("--model", &f.p("model")), ("--out", &pred)]));
        catalog(&p(&format!("{survey}.parquet")), &[], &p(spectra), &[&pred]);
    }
    let lamost = read(&p("lamost.parquet"));
    let desi = read(&p("desi.parquet"));
    let in_lamost: std::collections::HashSet<i64> =
        lamost.column("source_id").unwrap().i64().unwrap().into_no_null_iter().map(mock_lamost_gaia_id).collect();
    let in_both: std::collections::HashSet<i64> = desi
        .column("gaia_source_id")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .filter(|g| in_lamost.contains(g))
        .collect();
    assert!(!in_both.is_empty(), "shared stars reach both catalogues");
    ok(run(
        &["repeats", "--star-id-column", "gaia_source_id"],
        &[
            ("--catalog", &p("lamost.parquet")),
            ("--catalog", &p("desi.parquet")),
            ("--star-ids", &p("lamost-files/labels.parquet")),
            ("--star-ids", &p("desi-files/labels.parquet")),
            ("--out", &p("checks")),
        ],
    ));
    let pairs = read(&p("checks/repeats.parquet"));
    let kinds = strings(&pairs, "kind");
    let n: Vec<i64> = pairs.column("n_pairs").unwrap().i64().unwrap().into_no_null_iter().collect();
    let cross: Vec<i64> = (0..n.len()).filter(|&i| kinds[i] == "cross").map(|i| n[i]).collect();
    assert!(!cross.is_empty() && cross.iter().all(|&c| c == in_both.len() as i64), "{cross:?} vs {}", in_both.len());
}
