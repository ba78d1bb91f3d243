//! Mock LAMOST surveys: deterministic, readable by starpipe and astropy, shaped like real files.

use crate::common::*;
use polars::prelude::SerReader;
use starpipe::fits::file::{FitsHeader, open_fits};
use starpipe::ingest::Survey;
use starpipe::ingest::lamost::{LamostLayout, read_lamost};
use starpipe::mock::lamost::{MockStar, SnrDistribution, generate_lamost, write_label_catalog};
use std::collections::BTreeSet;
use std::path::Path;

const SNR: SnrDistribution = SnrDistribution { min: 5.0, max: 150.0 };

fn mock(dir: &Path, n: usize, seed: u64, corrupt: f64) -> Vec<MockStar> {
    let stars = generate_lamost(dir, starpipe::mock::Stars::builtin(), n, seed, SNR, corrupt, &|| {}).unwrap();
    write_label_catalog(dir, &stars).unwrap();
    stars
}

#[test]
fn ingest_writes_every_good_mock_file_and_fails_every_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let stars = mock(&dir.path().join("mock"), 60, 5, 0.2);
    let damaged: BTreeSet<String> = stars.iter().filter(|s| s.corruption.is_some()).map(|s| s.file.clone()).collect();
    assert!(!damaged.is_empty() && damaged.len() < 60);
    let out = dir.path().join("out");
    ingest(Survey::Lamost, &dir.path().join("mock"), &out);
    let report = read_report(&out);
    assert_eq!(report.len(), 60, "labels.csv/parquet are not inputs");
    for r in &report {
        let name = r.input_path.rsplit('/').next().unwrap();
        let expected = if damaged.contains(name) { "failed" } else { "written" };
        assert_eq!(r.status, expected, "{name}: {}", r.reason);
    }
    // The header's redshift is the drawn radial velocity.
    let df = read_spectra(&out);
    let rv: Vec<Option<f64>> = df.column("rv_kms").unwrap().f64().unwrap().iter().collect();
    let obsid: Vec<Option<i64>> = df.column("obsid").unwrap().i64().unwrap().iter().collect();
    for (o, v) in obsid.iter().zip(&rv) {
        let star = stars.iter().find(|s| Some(s.obsid) == *o).unwrap();
        assert!((v.unwrap() - star.rv_kms).abs() < 0.01, "{}: {v:?} vs {}", star.obsid, star.rv_kms);
    }
}

#[test]
fn a_seed_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    mock(&a, 12, 9, 0.0);
    mock(&b, 12, 9, 0.0);
    mock(&c, 12, 10, 0.0);
    let read = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

fn header_keys(path: &Path) -> BTreeSet<String> {
    let (mut f, _) = open_fits(path).unwrap();
    FitsHeader::read_current(&mut f).unwrap().keys().map(String::from).collect()
}

#[test]
fn mock_files_have_the_structure_and_keywords_of_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let stars = mock(dir.path(), 40, 11, 0.0);
    let real = [
        (LamostLayout::PrimaryImage, data("real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits")),
        (LamostLayout::CoaddTable, data("real/lamost/coadd_bintable/spec-55859-F5902_sp01-001.fits.gz")),
    ];
    for (layout, real_path) in real {
        let want = if layout == LamostLayout::PrimaryImage { "image" } else { "coadd" };
        let star = stars.iter().find(|s| s.layout == want).expect("both layouts drawn");
        let path = dir.path().join(&star.file);
        let m = read_lamost(&path, "mock").unwrap();
        assert_eq!(m.layout, layout);
        assert_eq!(m.gzip, star.gzip);
        assert_eq!(m.arm.len(), star.npix);
        assert_eq!(m.meta.obsid, Some(star.obsid));
        assert_eq!(m.meta.object_class, "STAR");
        let missing: Vec<String> = header_keys(&real_path).difference(&header_keys(&path)).cloned().collect();
        assert!(missing.is_empty(), "{want} mock lacks keywords of the real file: {missing:?}");
        // Same wavelength formula as the real files.
        assert!((m.arm.wavelength[0] - 3699.985).abs() < 0.01);
    }
    assert!(stars.iter().any(|s| s.gzip) && stars.iter().any(|s| !s.gzip));
    let npix: BTreeSet<usize> = stars.iter().map(|s| s.npix).collect();
    assert!(npix.iter().all(|n| [3902, 3906, 3908, 3909].contains(n)) && npix.len() >= 2);
}

#[test]
fn label_catalogue_is_keyed_by_obsid_in_parquet_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let stars = mock(dir.path(), 15, 2, 0.0);
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(dir.path().join("labels.parquet")).unwrap())
        .finish()
        .unwrap();
    let documented: Vec<String> =
        starpipe::schema::mock_lamost_labels().columns.iter().map(|c| c.name.clone()).collect();
    let written: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(written, documented);
    assert_eq!(df.height(), 15);
    let csv = std::fs::read_to_string(dir.path().join("labels.csv")).unwrap();
    assert_eq!(csv.lines().count(), 16);
    assert!(csv.lines().next().unwrap().starts_with("obsid,file,"));
    let obsids: Vec<Option<i64>> = df.column("obsid").unwrap().i64().unwrap().iter().collect();
    assert_eq!(obsids, stars.iter().map(|s| Some(s.obsid)).collect::<Vec<_>>());
}
