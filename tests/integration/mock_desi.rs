//! Mock DESI surveys: real structure, every row accounted for by ingest as its kind demands.

use crate::common::*;
use starpipe::ingest::Survey;
use starpipe::ingest::desi::{read_redrock, read_target_arms};
use starpipe::mock::desi::{DesiMockRow, RowKind, generate_desi, write_desi_labels};
use starpipe::mock::lamost::{Corruption, SnrDistribution};
use std::path::Path;

const SNR: SnrDistribution = SnrDistribution { min: 5.0, max: 80.0 };

fn mock(dir: &Path, stars: usize, seed: u64, corrupt: f64) -> Vec<DesiMockRow> {
    let rows = generate_desi(
        dir,
        starpipe::mock::Stars::builtin(),
        stars,
        30,
        seed,
        SNR,
        corrupt,
        &Default::default(),
        &|| {},
    )
    .unwrap();
    write_desi_labels(dir, &rows).unwrap();
    rows
}

#[test]
fn ingest_writes_the_good_stars_and_skips_every_other_row_for_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rows = mock(&dir.path().join("mock"), 40, 3, 0.0);
    for kind in [RowKind::Star, RowKind::Galaxy, RowKind::Sky, RowKind::Unassigned] {
        assert!(rows.iter().any(|r| r.kind == kind), "no {kind:?} row drawn");
    }
    let out = dir.path().join("out");
    ingest(Survey::Desi, &dir.path().join("mock"), &out);
    let report = read_report(&out);
    for row in &rows {
        let r = report
            .iter()
            .find(|r| r.level == "target" && r.source_id == Some(row.targetid))
            .expect("every row reported");
        let (status, reason) = match row.kind {
            RowKind::Star => ("written", ""),
            RowKind::BadFiberStar => ("skipped", "COADD_FIBERSTATUS"),
            RowKind::Galaxy | RowKind::Qso => ("skipped", "SPECTYPE"),
            RowKind::Sky => ("skipped", "OBJTYPE"),
            RowKind::Unassigned => ("skipped", "TARGETID <= 0"),
        };
        assert_eq!(r.status, status, "{:?} {}: {}", row.kind, row.targetid, r.reason);
        assert!(r.reason.contains(reason), "{:?}: {}", row.kind, r.reason);
    }
    let df = read_spectra(&out);
    assert_eq!(df.height(), rows.iter().filter(|r| r.kind == RowKind::Star).count());
    assert!(strings(&df, "selection_method").iter().all(|m| m == "redrock"));
}

#[test]
fn damaged_coadds_fail_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let rows = mock(&dir.path().join("mock"), 400, 8, 0.7);
    let out = dir.path().join("out");
    ingest(Survey::Desi, &dir.path().join("mock"), &out);
    let report = read_report(&out);
    for (kind, reason) in [
        (Corruption::Truncated, "truncated"),
        (Corruption::BadHeader, "missing column TARGET_RA"),
        (Corruption::MissingHdu, "missing HDU Z_FLUX"),
    ] {
        let row = rows.iter().find(|r| r.corruption == Some(kind)).unwrap_or_else(|| panic!("no {kind:?} coadd drawn"));
        let file = file_row(&report, &row.file);
        assert_eq!(file.status, "failed");
        assert!(file.reason.contains(reason), "{kind:?}: {}", file.reason);
    }
    let nan = rows
        .iter()
        .find(|r| r.corruption == Some(Corruption::NanFlux) && r.kind == RowKind::Star)
        .expect("a NaN-flux star");
    let r = report.iter().find(|r| r.source_id == Some(nan.targetid)).unwrap();
    assert_eq!((r.status.as_str(), r.reason.contains("NaN")), ("failed", true), "{}", r.reason);
}

#[test]
fn coadd_and_redrock_have_the_structure_of_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let rows = mock(dir.path(), 10, 4, 0.0);
    let coadd = dir.path().join(&rows[0].file);
    assert!(rows[0].file.starts_with("main/bright/"), "healpix tree: {}", rows[0].file);
    let names = |p: &Path| -> Vec<String> {
        let mut f = fitsio::FitsFile::open(p).unwrap();
        let n = f.num_hdus().unwrap();
        (1..n).map(|i| f.hdu(i).unwrap().name(&mut f).unwrap().trim().to_string()).collect()
    };
    assert_eq!(names(&coadd), names(&data("real/desi/coadd-sv3-bright-10145.fits")));
    let redrock = coadd.with_file_name(coadd.file_name().unwrap().to_string_lossy().replace("coadd-", "redrock-"));
    assert_eq!(names(&redrock), names(&data("real/desi/redrock-sv3-bright-10016.fits")));
    let columns = |p: &Path| -> Vec<String> {
        let mut f = fitsio::FitsFile::open(p).unwrap();
        starpipe::fits::file::column_names(&f.hdu("FIBERMAP").unwrap())
    };
    assert_eq!(columns(&coadd), columns(&data("real/desi/coadd-sv3-bright-10145.fits")));
    // The arms, their grids and the uint32 mask read as they do for real coadds.
    let arms = read_target_arms(&coadd, 0).unwrap();
    assert_eq!(arms.iter().map(|a| a.len()).collect::<Vec<_>>(), [2751, 2326, 2881]);
    assert!((arms[2].wavelength[2880] - 9824.0).abs() < 1e-6);
    let rr = read_redrock(&redrock).unwrap();
    assert_eq!(rr.len(), rows.iter().filter(|r| r.file == rows[0].file).count());
    let unassigned: Vec<_> = rr.iter().filter(|(t, _)| **t < 0).collect();
    assert!(unassigned.iter().all(|(_, r)| r.zwarn == 1570 && r.spectype == "STAR"));
}

#[test]
fn a_seed_writes_the_same_desi_files() {
    let dir = tempfile::tempdir().unwrap();
    mock(&dir.path().join("a"), 10, 6, 0.0);
    mock(&dir.path().join("b"), 10, 6, 0.0);
    let list = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = walk(d)
            .into_iter()
            .map(|p| (p.strip_prefix(d).unwrap().display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(&dir.path().join("a")), list(&dir.path().join("b")));
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// One coadd's spectra never straddle two shards, even when a shard holds fewer spectra than one
/// coadd does, and every input has exactly one file row across the report parts.
#[test]
fn a_coadds_spectra_stay_in_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let rows = mock(&dir.path().join("mock"), 40, 5, 0.0);
    let out = dir.path().join("out");
    let opts = options(Survey::Desi, &dir.path().join("mock"), &out).with_shard_size(3);
    starpipe::ingest::run_ingest(&opts).unwrap();
    let mut shard_of: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    let mut shards: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("spectra-"))
        .collect();
    shards.sort();
    assert!(shards.len() > 2, "{shards:?}");
    for s in &shards {
        use polars::prelude::SerReader;
        let df = polars::prelude::ParquetReader::new(std::fs::File::open(s).unwrap()).finish().unwrap();
        for p in strings(&df, "source_path") {
            shard_of.entry(p).or_default().insert(s.display().to_string());
        }
    }
    assert!(!shard_of.is_empty() && shard_of.values().all(|s| s.len() == 1), "{shard_of:?}");
    let coadds = rows.iter().map(|r| r.file.clone()).collect::<std::collections::BTreeSet<_>>().len();
    let report = read_report(&out);
    assert_eq!(report.iter().filter(|r| r.level == "file").count(), coadds, "one file row per input");
}

/// Every file of a DESI mock (coadds, redrock files, revisits, damaged files, labels) is the same
/// bytes whatever the number of threads, as the LAMOST mock's are: star `i` draws from its own stream.
#[test]
fn the_same_files_whatever_the_thread_count() {
    let run = |threads: usize| {
        let dir = tempfile::tempdir().unwrap();
        let extras = starpipe::mock::desi::DesiExtras { revisit_fraction: 0.5, overlap: None };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let rows = pool
            .install(|| {
                generate_desi(dir.path(), starpipe::mock::Stars::builtin(), 90, 20, 4, SNR, 0.2, &extras, &|| {})
            })
            .unwrap();
        write_desi_labels(dir.path(), &rows).unwrap();
        let files: std::collections::BTreeMap<String, Vec<u8>> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (e.path().strip_prefix(dir.path()).unwrap().display().to_string(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        (rows, files)
    };
    let (rows_one, one) = run(1);
    let (rows_three, three) = run(3);
    assert!(one.keys().filter(|k| k.starts_with("coadd-") || k.contains("/coadd-")).count() >= 4, "{:?}", one.keys());
    assert_eq!(one.keys().collect::<Vec<_>>(), three.keys().collect::<Vec<_>>());
    for (name, bytes) in &one {
        assert!(three[name] == *bytes, "{name} differs between 1 and 3 threads");
    }
    assert_eq!(rows_one, rows_three);
}
