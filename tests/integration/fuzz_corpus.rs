//! A seeded corpus of damaged real files (`starpipe::fuzz`) on every test run: the ingest process
//! never dies, every input is accounted for exactly once in the report, and no shard holds a
//! non-finite flux or ivar, or a negative ivar: judged by `starpipe::fuzz::check` (which the fuzz
//! benchmark uses too) and again, independently, by DuckDB (`tests/python/check_corpus_duckdb.py`).

use crate::common::*;
use starpipe::fuzz::{Mutant, check_ingest_output, desi_corpus, lamost_corpus};
use starpipe::mock::lamost::SnrDistribution;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MUTANTS_PER_SURVEY: usize = 300;

fn files_under(rel: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    files_under_abs(&data(rel), keep)
}

fn files_under_abs(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && keep(&e.file_name().to_string_lossy()))
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

/// Ingests `input` with the binary (so that a crash or abort shows as a signal) and checks the
/// three promises; returns the report's file rows by status.
fn ingest_and_check(survey: &str, out: &Path, mutants: &[Mutant]) -> BTreeMap<String, usize> {
    // A manifest, since a directory walk finds coadds only and the corpus has per-exposure files.
    let input = out.with_extension("manifest");
    let list: String = mutants.iter().map(|m| format!("{}\n", m.file.display())).collect();
    std::fs::write(&input, list).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_starpipe"))
        .args(["ingest", "--survey", survey, "--no-progress", "--threads", "2", "--shard-size", "200"])
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.code().is_some(), "ingest died from a signal: {:?}\n{stderr}", run.status);
    assert!(run.status.success(), "ingest of damaged {survey} files must not stop: {stderr}");
    assert!(
        stderr.matches("input failed").count() <= 10,
        "failures beyond the first few stay off the console:\n{stderr}"
    );

    let check = check_ingest_output(out, mutants).unwrap();
    assert!(check.holds(), "{survey}: {check:#?}");
    assert_eq!(check.accounted, mutants.len());
    assert!(check.spectra > 0, "some damaged files still hold good spectra: {check:?}");
    independent_verdict(out, &input, check.spectra);
    check.files
}

/// The same promises judged without the library's checker: DuckDB reads the report parts and the
/// shards as a user would. Every manifest line has exactly one file row, no shard value is
/// non-finite and no ivar negative, and the shards hold the spectra the checker counted.
fn independent_verdict(out: &Path, manifest: &Path, spectra: usize) {
    let run = Command::new(python("duckdb"))
        .arg(data("../python/check_corpus_duckdb.py"))
        .arg(out)
        .arg(manifest)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{text}");
    assert_eq!(text.trim(), spectra.to_string(), "DuckDB counts another number of spectra than the checker");
}

#[test]
fn damaged_lamost_files_are_accounted_for_and_never_reach_a_shard_as_non_finite_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = files_under("real/lamost", |n| n.ends_with(".fits") || n.ends_with(".fits.gz"));
    sources.extend(files_under("lamost_dr10_pylasp", |n| n.ends_with(".fits")).into_iter().take(5));
    assert!(sources.iter().any(|p| p.to_string_lossy().contains("coadd_bintable")));
    assert!(sources.iter().any(|p| p.to_string_lossy().ends_with(".gz")));
    let input = dir.path().join("in");
    let mutants = lamost_corpus(&sources, &input, 0..MUTANTS_PER_SURVEY, 12).unwrap();
    let by_status = ingest_and_check("lamost", &dir.path().join("out"), &mutants);
    assert!(by_status.get("failed").copied().unwrap_or(0) > 50, "the damage is real: {by_status:?}");
}

#[test]
fn damaged_desi_coadd_and_redrock_pairs_are_accounted_for_and_never_reach_a_shard_as_non_finite_values() {
    let dir = tempfile::tempdir().unwrap();
    let desi = |n: &str| data(&format!("real/desi/{n}"));
    // The real pairs hold galaxies; the real star has no redrock file; the per-exposure file has
    // tile-compressed MASK HDUs. A small mock pixel (real format) adds redrock-selected stars.
    let mock = dir.path().join("mock");
    starpipe::mock::desi::generate_desi(
        &mock,
        starpipe::mock::Stars::builtin(),
        10,
        16,
        4,
        SnrDistribution { min: 10.0, max: 60.0 },
        0.0,
        &Default::default(),
        &|| {},
    )
    .unwrap();
    let mock_coadd = files_under_abs(&mock, |n| n.starts_with("coadd-")).remove(0);
    let mock_redrock = starpipe::ingest::desi::redrock_companion(&mock_coadd).unwrap();
    let sources = vec![
        (desi("coadd-4-80613-thru20210324.fits"), Some(desi("redrock-4-80613-thru20210324.fits"))),
        (desi("coadd-special-dark-27247.fits"), Some(desi("redrock-special-dark-27247.fits"))),
        (desi("coadd-sv3-bright-10145.fits"), None),
        (desi("spectra-sv3-dark-26065.fits"), None),
        (mock_coadd.clone(), Some(mock_redrock)),
        (mock_coadd, None),
    ];
    let input = dir.path().join("in");
    let mutants = desi_corpus(&sources, &input, 0..MUTANTS_PER_SURVEY, 12).unwrap();
    for kind in
        ["redrock file missing", "redrock TARGETIDs", "REDSHIFTS NAXIS2", "_MASK garbled", "_RESOLUTION garbled"]
    {
        assert!(mutants.iter().any(|m| m.damage.iter().any(|d| d.contains(kind))), "no mutant of kind {kind}");
    }
    let by_status = ingest_and_check("desi", &dir.path().join("out"), &mutants);
    assert!(by_status.get("failed").copied().unwrap_or(0) > 30, "the damage is real: {by_status:?}");
}
