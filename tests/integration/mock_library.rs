//! Mocks from a real spectral library (`mock --library`): six MILES stars (tests/data/miles_sample)
//! rendered as LAMOST and DESI files, read back by the survey readers.

use crate::common::*;
use starpipe::grid::LogGrid;
use starpipe::ingest::Survey;
use starpipe::ingest::lamost::read_lamost;
use starpipe::mock::lamost::{SnrDistribution, generate_lamost, write_label_catalog};
use starpipe::mock::{Library, Stars};
use std::process::Command;

const HIGH_SNR: SnrDistribution = SnrDistribution { min: 300.0, max: 300.0 };
const C_KMS: f64 = 299_792.458;

fn library() -> Library {
    Library::open(&data("miles_sample")).expect("the sample library opens")
}

#[test]
fn a_library_of_several_files_opens_with_its_labels_and_left_out_stars() {
    let lib = library();
    let ids: Vec<i64> = lib.stars.iter().map(|s| s.id).collect();
    assert_eq!(ids, [5, 11, 12, 17, 66], "star 78 has no [Fe/H] and is left out");
    let g2v = &lib.stars[4];
    assert_eq!((g2v.labels.teff, g2v.labels.logg, g2v.labels.feh), (5838.0, 4.28, 0.03));
    assert_eq!(lib.left_out.len(), 1);
    assert_eq!((lib.left_out[0].0.as_str(), lib.left_out[0].1), ("no labels in the parameter table", 1));
    assert_eq!(lib.fwhm_angstrom(), 2.5);
    // MILES ends at 7409.6 Å in air: 7411.6 Å in vacuum; star 5's two bad pixels are at an edge.
    let full = lib.rest_spectrum(4);
    assert!((full.wave.last().unwrap() - 7411.64).abs() < 0.05, "{}", full.wave.last().unwrap());
    assert!(lib.rest_spectrum(0).wave.len() < full.wave.len());
    // Normalised to mean 1 over 4000–7000 Å.
    let window: Vec<f32> =
        full.wave.iter().zip(&full.flux).filter(|(w, _)| (4001.1..=7001.9).contains(*w)).map(|(_, f)| *f).collect();
    let mean = window.iter().sum::<f32>() / window.len() as f32;
    assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
}

#[test]
fn a_broken_library_fails_naming_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = Library::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no parameter table") && err.contains(&dir.path().display().to_string()), "{err}");
    std::fs::copy(data("miles_sample/miles_sample_params.csv"), dir.path().join("params.csv")).unwrap();
    std::fs::write(dir.path().join("broken.npz"), b"not a zip").unwrap();
    let err = Library::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("broken.npz") && err.contains("not a readable .npz"), "{err}");
}

#[test]
fn lamost_renders_carry_the_star_id_its_labels_and_its_lines_at_the_right_wavelength() {
    let lib = library();
    let dir = tempfile::tempdir().unwrap();
    let stars =
        generate_lamost(dir.path(), Stars::Library { library: &lib, repeats: 2 }, 0, 3, HIGH_SNR, 0.0, &|| {}).unwrap();
    write_label_catalog(dir.path(), &stars).unwrap();
    assert_eq!(stars.len(), 10, "five stars, two renders each");
    let ids: Vec<Option<i64>> = stars.iter().map(|s| s.library_id).collect();
    assert_eq!(&ids[..5], &ids[5..], "render i is star i % 5");
    assert!(stars[0].rv_kms != stars[5].rv_kms, "each render has its own radial velocity");
    for s in &stars {
        let star = lib.stars.iter().find(|l| Some(l.id) == s.library_id).unwrap();
        assert_eq!(s.truth, star.labels);
        assert_eq!(s.catalog, star.labels, "literature labels, no noise added");
        assert!(s.catalog_err.teff.is_nan(), "no stated error");
    }
    let labels = std::fs::read_to_string(dir.path().join("labels.csv")).unwrap();
    assert!(labels.lines().next().unwrap().contains(",library_id,"));
    assert!(
        labels.lines().nth(5).unwrap().contains(",66,4600000000000000066,5838.0,4.280,0.030,5838.0,4.280,0.030,,,,"),
        "{labels}"
    );

    // The G2V star (66), both renders: Hα's core where a vacuum rest wavelength shifted by the
    // render's RV puts it (an air wavelength would sit 1.8 Å to the blue); nothing past MILES' end.
    for s in stars.iter().filter(|s| s.library_id == Some(66)) {
        let path = dir.path().join(&s.file);
        let arm = read_lamost(&path, &s.file).unwrap().arm;
        let expected = 6564.61 * (1.0 + s.rv_kms / C_KMS);
        let near: Vec<usize> =
            (0..arm.wavelength.len()).filter(|&i| (arm.wavelength[i] - expected).abs() < 8.0).collect();
        let k = *near.iter().min_by(|a, b| arm.flux[**a].total_cmp(&arm.flux[**b])).unwrap();
        let (a, b, c) = (arm.flux[k - 1] as f64, arm.flux[k] as f64, arm.flux[k + 1] as f64);
        let step = arm.wavelength[k + 1] - arm.wavelength[k];
        let centre = arm.wavelength[k] + 0.5 * step * (a - c) / (a - 2.0 * b + c);
        assert!((centre - expected).abs() < 0.6, "Hα at {centre:.2} Å, expected {expected:.2} (rv {})", s.rv_kms);
        let end = 7411.64 * (1.0 + s.rv_kms / C_KMS);
        let past: Vec<f32> =
            arm.wavelength.iter().zip(&arm.ivar).filter(|(w, _)| **w > end + 3.0).map(|(_, iv)| *iv).collect();
        assert!(past.len() > 800 && past.iter().all(|iv| *iv == 0.0), "pixels past the library are masked");
        let covered = arm.wavelength.iter().zip(&arm.ivar).filter(|(w, _)| (4000.0..7000.0).contains(*w));
        let usable = covered.clone().filter(|(_, iv)| **iv > 0.0).count() as f64 / covered.count() as f64;
        assert!(usable > 0.98, "usable fraction in 4000–7000 Å: {usable}");
    }
}

#[test]
fn desi_renders_are_all_stars_and_mask_what_the_library_does_not_cover() {
    let lib = library();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let rows = starpipe::mock::desi::generate_desi(
        &files,
        Stars::Library { library: &lib, repeats: 1 },
        0,
        3,
        4,
        HIGH_SNR,
        0.0,
        &Default::default(),
        &|| {},
    )
    .unwrap();
    starpipe::mock::desi::write_desi_labels(&files, &rows).unwrap();
    assert_eq!(rows.len(), 5, "one row per render: 3 + 2 in two coadds");
    assert!(rows.iter().all(|r| r.kind == starpipe::mock::desi::RowKind::Star && r.catalog_err.is_none()));
    let ids: Vec<Option<i64>> = rows.iter().map(|r| r.library_id).collect();
    assert_eq!(ids, [Some(5), Some(11), Some(12), Some(17), Some(66)]);
    let out = dir.path().join("out");
    let summary = ingest(Survey::Desi, &files, &out);
    assert_eq!(summary.counts.spectra, 5, "{summary:?}");
    let df = read_spectra(&out);
    let grid = LogGrid::lamost_window(0, 3909).wavelengths();
    let ivar = df.column("ivar").unwrap().array().unwrap().clone();
    for i in 0..df.height() {
        let v: Vec<f32> = ivar.get_as_series(i).unwrap().f32().unwrap().into_no_null_iter().collect();
        let past = grid.iter().zip(&v).filter(|(w, _)| **w > 7450.0).map(|(_, iv)| *iv);
        assert!(past.clone().count() > 800 && past.clone().all(|iv| iv == 0.0), "row {i}: red arm beyond MILES");
        let inside = grid.iter().zip(&v).filter(|(w, _)| (4000.0..7000.0).contains(*w));
        let usable = inside.clone().filter(|(_, iv)| **iv > 0.0).count() as f64 / inside.count() as f64;
        assert!(usable > 0.98, "row {i}: usable fraction in 4000–7000 Å {usable}");
    }
}

#[test]
fn the_command_renders_listed_stars_repeatedly_and_refuses_n() {
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "# a fold\n66\n17  # metal-poor giant\n999\n").unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_starpipe"))
            .args(["mock", "--survey", "lamost", "--library"])
            .arg(data("miles_sample"))
            .args(extra)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let out = run(&["--library-ids", ids.to_str().unwrap(), "--repeats", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 ids are not usable library stars (e.g. 999)"));
    let labels = std::fs::read_to_string(dir.path().join("out/labels.csv")).unwrap();
    let column: Vec<&str> = labels.lines().skip(1).map(|l| l.split(',').nth(5).unwrap()).collect();
    assert_eq!(column, ["17", "66", "17", "66", "17", "66"]);
    let refused = run(&["--n", "5"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The MILES library ships in the repository (`data/miles/`), so a fresh clone can render and
/// calibrate on real stars without anything beside it: every file matches the checksum its
/// provenance records, and it opens with the 945 stars that have a spectrum and all three labels.
#[test]
fn the_shipped_miles_library_is_intact_and_opens() {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/miles");
    let provenance = std::fs::read_to_string(dir.join("PROVENANCE.md")).unwrap();
    let sums: Vec<(&str, &str)> = provenance
        .lines()
        .filter_map(|l| l.split_once("  "))
        .filter(|(h, _)| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(sums.len(), 7, "six flux shards and the parameter table");
    for (hash, name) in sums {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let got: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, hash, "{name}");
    }
    let library = Library::open(&dir).unwrap();
    assert_eq!(library.stars.len(), 945, "{:?}", library.left_out);
}
