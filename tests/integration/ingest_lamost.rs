//! LAMOST LRS: both layouts, gzip by magic bytes, header values, selection — on the real files.

use crate::common::*;
use starpipe::ingest::Survey;
use starpipe::ingest::lamost::{LamostLayout, read_lamost};

#[test]
fn old_image_layout_header_is_parsed_exactly() {
    let path = data("real/lamost/image5xN/spec-55859-F5902_sp01-005.fits.gz");
    let s = read_lamost(&path, "x").unwrap();
    assert_eq!(s.layout, LamostLayout::PrimaryImage);
    assert!(s.gzip);
    assert_eq!(s.meta.obsid, Some(101005));
    assert_eq!(s.meta.ra, 332.535456);
    assert_eq!(s.meta.dec, -2.116436);
    assert_eq!(s.meta.object_class, "STAR");
    assert_eq!(s.meta.object_subclass.as_deref(), Some("G0"));
    assert_eq!(s.meta.z, Some(-0.00025044));
    assert_eq!(s.meta.z_err, Some(2.635e-05));
    assert_eq!(s.meta.snr_ugriz, [Some(0.71), Some(8.08), Some(16.61), Some(23.05), Some(11.99)]);
    assert_eq!(s.meta.fiber_mask, Some(0));
    assert_eq!(s.meta.release, "LAMOST DR5");
    assert_eq!(s.arm.len(), 3908, "npix comes from the header, not a constant");
    let ids = &s.meta.ids;
    assert_eq!(ids.designation.as_deref(), Some("LAMOST J221008.50-020659.1"));
    assert_eq!(ids.star_id, "J221008.50-020659.1", "repeats of a target share its designation");
    assert_eq!(
        (ids.lmjd, ids.planid.as_deref(), ids.spid, ids.fiberid),
        (Some(55859), Some("F5902"), Some(1), Some(5))
    );
    assert_eq!(ids.gaia_source_id, None, "LAMOST spectrum headers carry no Gaia id");
}

#[test]
fn coadd_table_layout_header_is_parsed_exactly() {
    let s = read_lamost(&data("real/lamost/coadd_bintable/spec-55859-F5902_sp01-001.fits.gz"), "x").unwrap();
    assert_eq!(s.layout, LamostLayout::CoaddTable);
    assert_eq!(s.meta.fiber_mask, Some(2), "FIB_MASK=2 in this file");
    assert_eq!(s.meta.release, "LAMOST DR9");
    let dr13 =
        read_lamost(&data("real/lamost/coadd_bintable/spec-60591-LN042429N340750BM01_sp01-001.fits.gz"), "x").unwrap();
    assert_eq!(dr13.meta.obsid, Some(1247301001));
    assert_eq!(dr13.arm.len(), 3909);
    assert_eq!(dr13.meta.ids.designation.as_deref(), Some("LAMOST J042543.91+323730.3"));
    assert_eq!((dr13.meta.ids.lmjd, dr13.meta.ids.fiberid), (Some(60591), Some(1)));
    assert!(dr13.arm.mask.iter().any(|&m| m != 0), "ORMASK has 1s in this file");
}

#[test]
fn same_obsid_in_both_layouts_has_the_same_wavelength_grid() {
    let a = read_lamost(&data("real/lamost/image5xN/spec-55859-F5902_sp01-005.fits.gz"), "a").unwrap();
    let b = read_lamost(&data("real/lamost/coadd_bintable/spec-55859-F5902_sp01-005.fits.gz"), "b").unwrap();
    assert_eq!((a.layout, b.layout), (LamostLayout::PrimaryImage, LamostLayout::CoaddTable));
    assert_eq!(a.meta.obsid, b.meta.obsid);
    assert_eq!(a.arm.wavelength, b.arm.wavelength);
    assert_eq!(b.meta.z, Some(-0.00025064), "re-reduced redshift differs from DR5's");
    assert_ne!(a.arm.flux, b.arm.flux, "DR9 re-reduced the flux");
    // The stored wavelengths follow the documented log-linear formula.
    for (i, w) in a.arm.wavelength.iter().enumerate() {
        let expected = 10f64.powf(3.5682 + 1e-4 * i as f64);
        assert!((w - expected).abs() < 0.01, "pixel {i}: {w} vs {expected}");
    }
}

#[test]
fn uncompressed_and_renamed_files_are_detected_by_magic_bytes() {
    let plain = read_lamost(&data("real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits"), "x").unwrap();
    assert!(!plain.gzip);
    assert_eq!(plain.arm.len(), 3909);
    // A gzip file under a .fits name (as DR10 renames files) still opens, and is seen as gzip.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("101005.fits");
    std::fs::copy(data("real/lamost/coadd_bintable/spec-55859-F5902_sp01-005.fits.gz"), &renamed).unwrap();
    let s = read_lamost(&renamed, "x").unwrap();
    assert!(s.gzip);
    assert_eq!(s.meta.obsid, Some(101005));
}

#[test]
fn dr10_files_have_varying_pixel_counts_and_fibre_masks() {
    let s = read_lamost(&data("lamost_dr10_pylasp/3713013.fits"), "x").unwrap();
    assert_eq!(s.meta.fiber_mask, Some(4));
    assert_eq!(s.meta.release, "LAMOST DR10");
    let mut npix: Vec<usize> = std::fs::read_dir(data("lamost_dr10_pylasp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "fits"))
        .map(|p| read_lamost(&p, "x").unwrap().arm.len())
        .collect();
    npix.sort();
    npix.dedup();
    assert_eq!(npix, vec![3902, 3906, 3909]);
}

#[test]
fn ingest_of_all_real_lamost_files_writes_stars_and_skips_the_qso() {
    let out = tempfile::tempdir().unwrap();
    let summary = ingest(Survey::Lamost, &data("real/lamost"), out.path());
    assert_eq!(summary.inputs, 10);
    let report = read_report(out.path());
    let qso = file_row(&report, "coadd_bintable/spec-60591-LN042429N340750BM01_sp01-005.fits.gz");
    assert_eq!(qso.status, "skipped");
    assert!(qso.reason.contains("CLASS=QSO"), "{}", qso.reason);
    assert_eq!(report.iter().filter(|r| r.status == "written").count(), 9);
    assert_eq!(report.len(), 10, "every input is accounted for exactly once");

    let df = read_spectra(out.path());
    assert_eq!(df.height(), 9);
    let ids = strings(&df, "spectrum_id");
    assert!(ids.contains(&"lamost-DR5-101005".to_string()) && ids.contains(&"lamost-DR9-101005".to_string()));
    assert!(strings(&df, "selection_method").iter().all(|m| m == "lamost_class"));
    // Normalised: the median of each spectrum's usable pixels sits near 1.
    let flux = df.column("flux").unwrap().array().unwrap().clone();
    let ivar = df.column("ivar").unwrap().array().unwrap().clone();
    for (i, id) in ids.iter().enumerate() {
        let f = flux.get_as_series(i).unwrap();
        let v = ivar.get_as_series(i).unwrap();
        let mut good: Vec<f32> = f
            .f32()
            .unwrap()
            .into_no_null_iter()
            .zip(v.f32().unwrap().into_no_null_iter())
            .filter(|(_, iv)| *iv > 0.0)
            .map(|(x, _)| x)
            .collect();
        good.sort_by(f32::total_cmp);
        let median = good[good.len() / 2];
        assert!((median - 1.0).abs() < 0.05, "{id}: median normalised flux {median}");
    }
}

#[test]
fn dr10_directory_ingests_without_failures() {
    let out = tempfile::tempdir().unwrap();
    let summary = ingest(Survey::Lamost, &data("lamost_dr10_pylasp"), out.path());
    assert_eq!(summary.inputs, 25);
    assert_eq!(summary.files(starpipe::ingest::record::Status::Written), 25, "{:?}", summary.counts);
    let df = read_spectra(out.path());
    // 3902-pixel files leave the last 7 grid pixels uncovered: masked, not invented.
    let masked: Vec<f32> = df.column("masked_fraction").unwrap().f32().unwrap().into_no_null_iter().collect();
    assert!(masked.iter().all(|&m| (0.0..0.2).contains(&m)), "{masked:?}");
    let npix = 3909;
    let flux: Vec<f32> =
        df.column("flux").unwrap().array().unwrap().get_inner().f32().unwrap().into_no_null_iter().collect();
    let ivar: Vec<f32> =
        df.column("ivar").unwrap().array().unwrap().get_inner().f32().unwrap().into_no_null_iter().collect();
    // Where each file's usable pixels end, from the raw file: the last usable wavelength, taken to
    // the rest frame with the file's own redshift. Every grid pixel more than a pixel and a half
    // beyond it has no input under it and must be masked; so must nothing be invented there.
    let grid = starpipe::grid::LogGrid::preset(starpipe::grid::GridPreset::Lamost).wavelengths();
    let mut red_end: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
    for e in std::fs::read_dir(data("lamost_dr10_pylasp")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "fits") {
            continue;
        }
        let s = read_lamost(&path, "x").unwrap();
        let last = (0..s.arm.len()).rev().find(|&j| s.arm.ivar[j] > 0.0).unwrap();
        red_end.insert(s.meta.obsid.unwrap(), s.arm.wavelength[last] / (1.0 + s.meta.z.unwrap_or(0.0)));
    }
    let source: Vec<i64> = df.column("source_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    let mut uncovered = 0;
    for row in 0..df.height() {
        let (f, iv) = (&flux[row * npix..(row + 1) * npix], &ivar[row * npix..(row + 1) * npix]);
        // Every masked pixel carries flux 1.0 and ivar 0, the documented placeholder.
        assert!((0..npix).all(|j| iv[j] > 0.0 || (iv[j] == 0.0 && f[j] == 1.0)), "row {row}");
        let beyond = red_end[&source[row]] * 10f64.powf(1.5e-4);
        for j in (0..npix).filter(|&j| grid[j] > beyond) {
            assert_eq!(iv[j], 0.0, "obsid {}: pixel {j} at {:.1} Å is past the data's end", source[row], grid[j]);
            uncovered += 1;
        }
    }
    assert!(uncovered > 0, "the files end short of the grid: some pixels must lie beyond their data");
    // Real LAMOST shards are at LAMOST's own resolution: what a model trained on them records.
    assert_eq!(resolutions(out.path()), vec![Resolution::Constant(1800.0)]);
}

#[test]
fn file_names_with_brackets_and_parentheses_are_taken_literally() {
    // cfitsio would read "[1]" as an HDU selector and "(...)" as a template in its usual open.
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(
        data("real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits"),
        inputs.join("spec[1](copy).fits"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = ingest(Survey::Lamost, &inputs, &out);
    assert_eq!(summary.files(starpipe::ingest::record::Status::Written), 1, "{:?}", summary.counts);
}
