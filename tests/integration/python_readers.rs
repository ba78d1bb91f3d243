//! DuckDB (and astropy) read our shards as they are. Needs the Python packages scripts/test-env.sh installs.

use crate::common::*;
use starpipe::ingest::Survey;
use std::process::Command;

#[test]
fn duckdb_reads_shards_and_they_match_astropy() {
    let python = python("duckdb, astropy, numpy");
    let out = tempfile::tempdir().unwrap();
    ingest(Survey::Lamost, &data("real/lamost"), out.path());
    let fits = data("real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits");
    let script = data("../python/check_shards_duckdb.py");
    let result = Command::new(&python).arg(script).arg(out.path()).arg(&fits).arg("677503031").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success(), "{text}");
    assert!(text.contains("ok:"), "{text}");
}

#[test]
fn astropy_reads_every_undamaged_mock_file() {
    let python = python("astropy, numpy");
    let dir = tempfile::tempdir().unwrap();
    let stars = starpipe::mock::lamost::generate_lamost(
        dir.path(),
        starpipe::mock::Stars::builtin(),
        30,
        4,
        starpipe::mock::lamost::SnrDistribution { min: 5.0, max: 100.0 },
        0.2,
        &|| {},
    )
    .unwrap();
    starpipe::mock::lamost::write_label_catalog(dir.path(), &stars).unwrap();
    let script = data("../python/check_mock_astropy.py");
    let result = Command::new(&python).arg(script).arg(dir.path()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success(), "{text}");
    let good = stars.iter().filter(|s| s.corruption.is_none()).count();
    assert!(text.contains(&format!("ok: {good} undamaged")), "{text}");
}

#[test]
fn astropy_reads_every_undamaged_mock_desi_coadd() {
    let python = python("astropy, numpy");
    let dir = tempfile::tempdir().unwrap();
    let snr = starpipe::mock::lamost::SnrDistribution { min: 5.0, max: 50.0 };
    let rows = starpipe::mock::desi::generate_desi(
        dir.path(),
        starpipe::mock::Stars::builtin(),
        40,
        20,
        12,
        snr,
        0.3,
        &Default::default(),
        &|| {},
    )
    .unwrap();
    starpipe::mock::desi::write_desi_labels(dir.path(), &rows).unwrap();
    let script = data("../python/check_mock_desi_astropy.py");
    let result = Command::new(&python).arg(script).arg(dir.path()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success(), "{text}");
    let files: std::collections::BTreeSet<&String> = rows
        .iter()
        .filter(|r| r.corruption.is_none() || r.corruption == Some(starpipe::mock::lamost::Corruption::NanFlux))
        .map(|r| &r.file)
        .collect();
    assert!(text.contains(&format!("ok: {} undamaged", files.len())), "{text}");
}
