//! DESI coadds and spectra files: selection with and without redrock, odd productions — real files.

use crate::common::*;
use starpipe::ingest::Survey;
use starpipe::ingest::desi::{read_redrock, read_target_arms};

const MWS_STAR: i64 = 39633301257848811;

#[test]
fn pristine_coadd_yields_its_mws_star_by_targeting_bits() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.txt");
    std::fs::write(&manifest, format!("{}\n", data("real/desi/coadd-sv3-bright-10145.fits").display())).unwrap();
    let out = dir.path().join("out");
    ingest(Survey::Desi, &manifest, &out);
    let df = read_spectra(&out);
    assert_eq!(df.height(), 1);
    let tid: Vec<Option<i64>> = df.column("targetid").unwrap().i64().unwrap().iter().collect();
    assert_eq!(tid, vec![Some(MWS_STAR)]);
    assert_eq!(strings(&df, "selection_method"), vec!["mws_target_bits"]);
    let rows: Vec<Option<i32>> = df.column("source_row").unwrap().i32().unwrap().iter().collect();
    assert_eq!(rows, vec![Some(1)]);
    let mws: Vec<Option<i64>> = df.column("mws_target").unwrap().i64().unwrap().iter().collect();
    assert_eq!(mws, vec![Some(17)], "SV3_MWS_TARGET is carried for SV files");
    let snr_r: Vec<Option<f32>> = df.column("snr_arm_r").unwrap().f32().unwrap().iter().collect();
    assert!((snr_r[0].unwrap() - 25.3).abs() < 0.1, "MEDIAN_COADD_SNR_R {:?}", snr_r);
    let rest: Vec<Option<bool>> = df.column("rest_frame").unwrap().bool().unwrap().iter().collect();
    assert_eq!(rest, vec![Some(false)], "no redrock, so no redshift to shift by");
    // Cross-match keys as the real FIBERMAP and header hold them.
    let i64s = |c: &str| -> Vec<Option<i64>> { df.column(c).unwrap().i64().unwrap().iter().collect() };
    assert_eq!(i64s("gaia_source_id"), vec![Some(1427922286271436032)], "REF_ID with REF_CAT G2");
    assert_eq!(i64s("ref_id"), vec![Some(1427922286271436032)]);
    assert_eq!(strings(&df, "ref_cat"), vec!["G2"]);
    let mags: Vec<f32> = ["gaia_phot_g_mean_mag", "gaia_phot_bp_mean_mag", "gaia_phot_rp_mean_mag"]
        .iter()
        .map(|c| df.column(c).unwrap().f32().unwrap().get(0).unwrap())
        .collect();
    assert_eq!(mags, vec![17.009699, 17.966927, 16.030994]);
    assert_eq!(strings(&df, "star_id"), vec![MWS_STAR.to_string()]);
    assert_eq!(strings(&df, "desi_survey"), vec!["sv3"]);
    assert_eq!(strings(&df, "desi_program"), vec!["bright"]);
    let i32s = |c: &str| -> Vec<Option<i32>> { df.column(c).unwrap().i32().unwrap().iter().collect() };
    assert_eq!(i32s("healpix"), vec![Some(10145)]);
    assert_eq!(i32s("tileid"), vec![None], "a healpix coadd has no tile");
    assert_eq!(df.column("designation").unwrap().null_count(), 1, "LAMOST keys are null for DESI");

    let report = read_report(&out);
    let targets: Vec<&Report> = report.iter().filter(|r| r.level == "target").collect();
    assert_eq!(targets.len(), 5, "every FIBERMAP row is accounted for");
    let sky = targets.iter().find(|r| r.source_row == Some(3)).unwrap();
    assert_eq!(sky.status, "skipped");
    assert!(sky.reason.contains("OBJTYPE"), "{}", sky.reason);
}

#[test]
fn trimmed_coadd_with_negative_targetids_is_handled() {
    let out = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("real/desi/coadd-sv3-dark-26065.fits"), dir.path().join("coadd-sv3-dark-26065.fits")).unwrap();
    ingest(Survey::Desi, dir.path(), out.path());
    let report = read_report(out.path());
    let file = file_row(&report, "coadd-sv3-dark-26065.fits");
    assert_eq!(file.status, "skipped", "{}", file.reason);
    let neg: Vec<&Report> = report.iter().filter(|r| r.source_id.is_some_and(|t| t < 0)).collect();
    assert_eq!(neg.len(), 2);
    assert!(neg.iter().all(|r| r.status == "skipped" && r.reason.contains("TARGETID <= 0")));
}

#[test]
fn redrock_selection_and_newer_productions_read() {
    let out = tempfile::tempdir().unwrap();
    let summary = ingest(Survey::Desi, &data("real/desi"), out.path());
    assert_eq!(summary.inputs, 4, "coadd-* files only; redrock and spectra files are not inputs");
    assert_eq!(summary.files(starpipe::ingest::record::Status::Failed), 0, "{:?}", summary.counts);
    let report = read_report(out.path());
    // Newer production: extra FIBERMAP columns, redrock FITMETHOD, logical HPXNEST, int32 MASK.
    for name in ["coadd-special-dark-27247.fits", "coadd-4-80613-thru20210324.fits"] {
        let f = file_row(&report, name);
        assert_eq!(f.status, "skipped", "{name}: {}", f.reason);
        assert!(f.reason.contains("selection by redrock"), "{name}: {}", f.reason);
        let t = report.iter().find(|r| r.level == "target" && r.input_path.ends_with(name)).unwrap();
        assert!(t.reason.contains("SPECTYPE is not STAR (SPECTYPE='GALAXY')"), "{}", t.reason);
    }
    let rr = read_redrock(&data("real/desi/redrock-special-dark-27247.fits")).unwrap();
    assert_eq!(rr.len(), 1);
}

#[test]
fn redrock_rows_parse_with_the_unassigned_fibre_trap() {
    let rr = read_redrock(&data("real/desi/redrock-sv3-bright-10016.fits")).unwrap();
    assert_eq!(rr.len(), 43);
    let stars = rr.values().filter(|r| r.spectype == "STAR").count();
    assert_eq!(stars, 17);
    let unassigned: Vec<_> = rr.iter().filter(|(t, _)| **t < 0).collect();
    assert_eq!(unassigned.len(), 9);
    assert!(unassigned.iter().all(|(_, r)| r.zwarn == 1570));
}

#[test]
fn tile_compressed_mask_of_a_spectra_file_reads() {
    let path = data("real/desi/spectra-sv3-dark-26065.fits");
    for row in 0..5 {
        let arms = read_target_arms(&path, row).unwrap();
        assert_eq!(arms.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["b", "r", "z"]);
        let b = &arms[0];
        assert_eq!((b.len(), b.mask.len()), (2751, 2751));
        let all_bit9 = b.mask.iter().all(|m| m & (1 << 9) != 0);
        assert_eq!(all_bit9, row != 2, "row {row}: MASK bit 9 (BADFIBER) is set across rows 0, 1, 3, 4 only");
        if row == 2 {
            assert!(b.mask.iter().all(|&m| m == 0));
        }
    }
    // And the coadd's uint32-with-BZERO mask reads as unsigned values.
    let coadd = read_target_arms(&data("real/desi/coadd-sv3-bright-10145.fits"), 1).unwrap();
    assert!((coadd[0].wavelength[0] - 3600.0).abs() < 1e-6 && coadd[0].len() == 2751);
}

#[test]
fn spectra_files_are_ingested_from_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.txt");
    std::fs::write(
        &manifest,
        format!("# per-exposure file\n{}\n", data("real/desi/spectra-sv3-dark-26065.fits").display()),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = ingest(Survey::Desi, &manifest, &out);
    assert_eq!(summary.inputs, 1);
    let report = read_report(&out);
    assert_eq!(report.iter().filter(|r| r.level == "target").count(), 5);
    let r4 = report.iter().find(|r| r.source_row == Some(4)).unwrap();
    assert!(r4.reason.contains("FIBERSTATUS"), "FIBERSTATUS=512 (BADPOSITION) is disallowed: {}", r4.reason);
}

/// A copy of the pristine coadd with a redrock file written beside it: the MWS star as a STAR at
/// `z`, every other row as a GALAXY.
fn coadd_with_redrock(dir: &std::path::Path, z: f64) -> std::path::PathBuf {
    use fitsio::FitsFile;
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    let coadd = dir.join("coadd-sv3-bright-10145.fits");
    std::fs::copy(data("real/desi/coadd-sv3-bright-10145.fits"), &coadd).unwrap();
    let ids = [39633301257849333i64, MWS_STAR, 39633301257849317, 616094053561271023, 39633301257848277];
    let mut f = FitsFile::create(dir.join("redrock-sv3-bright-10145.fits")).open().unwrap();
    let col =
        |n: &str, t: ColumnDataType, r: usize| ColumnDescription::new(n).with_type(t).that_repeats(r).create().unwrap();
    let cols = [
        col("TARGETID", ColumnDataType::LongLong, 1),
        col("Z", ColumnDataType::Double, 1),
        col("ZERR", ColumnDataType::Double, 1),
        col("ZWARN", ColumnDataType::LongLong, 1),
        col("SPECTYPE", ColumnDataType::String, 6),
        col("SUBTYPE", ColumnDataType::String, 20),
    ];
    let hdu = f.create_table("REDSHIFTS", &cols).unwrap();
    hdu.write_col(&mut f, "TARGETID", &ids).unwrap();
    let star = |a: f64, b: f64| ids.iter().map(|&t| if t == MWS_STAR { a } else { b }).collect::<Vec<f64>>();
    hdu.write_col(&mut f, "Z", &star(z, 0.3)).unwrap();
    hdu.write_col(&mut f, "ZERR", &star(1e-6, 1e-4)).unwrap();
    hdu.write_col(&mut f, "ZWARN", &[0i64; 5]).unwrap();
    let types: Vec<String> = ids.iter().map(|&t| if t == MWS_STAR { "STAR" } else { "GALAXY" }.to_string()).collect();
    hdu.write_col(&mut f, "SPECTYPE", &types).unwrap();
    let sub: Vec<String> = ids.iter().map(|&t| if t == MWS_STAR { "K" } else { "" }.to_string()).collect();
    hdu.write_col(&mut f, "SUBTYPE", &sub).unwrap();
    coadd
}

#[test]
fn redrock_selects_the_star_and_its_redshift_shifts_it_to_rest_frame() {
    let dir = tempfile::tempdir().unwrap();
    let z = 120.0 / starpipe::preprocess::C_KMS;
    coadd_with_redrock(dir.path(), z);
    let out = dir.path().join("out");
    let summary = ingest(Survey::Desi, dir.path(), &out);
    assert_eq!(summary.targets(starpipe::ingest::record::Status::Written), 1);
    let df = read_spectra(&out);
    assert_eq!(strings(&df, "selection_method"), vec!["redrock"]);
    assert_eq!(strings(&df, "object_subclass"), vec!["K"]);
    let rv: Vec<Option<f64>> = df.column("rv_kms").unwrap().f64().unwrap().iter().collect();
    assert!((rv[0].unwrap() - 120.0).abs() < 1e-6);
    let rest: Vec<Option<bool>> = df.column("rest_frame").unwrap().bool().unwrap().iter().collect();
    assert_eq!(rest, vec![Some(true)]);
    let report = read_report(&out);
    let galaxies = report.iter().filter(|r| r.reason.contains("SPECTYPE='GALAXY'")).count();
    assert_eq!(galaxies, 3, "3 TGT rows typed GALAXY; the SKY row is skipped before redrock");
}

fn pixel_scatter(out: &std::path::Path) -> f64 {
    let df = read_spectra(out);
    let flux = df.column("flux").unwrap().array().unwrap().get_as_series(0).unwrap();
    let ivar = df.column("ivar").unwrap().array().unwrap().get_as_series(0).unwrap();
    let f: Vec<f32> = flux.f32().unwrap().into_no_null_iter().collect();
    let v: Vec<f32> = ivar.f32().unwrap().into_no_null_iter().collect();
    let diffs: Vec<f64> =
        (1..f.len()).filter(|&j| v[j] > 0.0 && v[j - 1] > 0.0).map(|j| (f[j] - f[j - 1]).abs() as f64).collect();
    diffs.iter().sum::<f64>() / diffs.len() as f64
}

#[test]
fn degrading_desi_to_lamost_resolution_smooths_the_spectrum() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("real/desi/coadd-sv3-bright-10145.fits");
    let manifest = dir.path().join("m.txt");
    std::fs::write(&manifest, format!("{}\n", input.display())).unwrap();
    let native = dir.path().join("native");
    ingest(Survey::Desi, &manifest, &native);
    let degraded = dir.path().join("degraded");
    let mut opts = options(Survey::Desi, &manifest, &degraded);
    opts.preprocess.degrade_to_r = Some(1800.0);
    starpipe::ingest::run_ingest(&opts).unwrap();
    let (s_native, s_degraded) = (pixel_scatter(&native), pixel_scatter(&degraded));
    assert!(s_degraded < 0.8 * s_native, "pixel-to-pixel scatter {s_degraded:.4} (R=1800) vs {s_native:.4} (native)");
    // Smoothing adds no information: the star's S/N on the grid stays what it was (a degraded
    // pixel's variance is its inputs' mean; the squared-kernel sum doubled it on this file).
    let snr =
        |out: &std::path::Path| -> f32 { read_spectra(out).column("snr_grid").unwrap().f32().unwrap().get(0).unwrap() };
    let (n, d) = (snr(&native), snr(&degraded));
    assert!(n > 1.0 && (d / n - 1.0).abs() < 0.25, "grid S/N {d} degraded vs {n} native");
    // What a model trained on these shards records as its resolution, and checks others against.
    assert_eq!(resolutions(&native), vec![Resolution::DesiNative]);
    assert_eq!(resolutions(&degraded), vec![Resolution::Constant(1800.0)]);
}

#[test]
fn an_unreadable_redrock_file_fails_every_target_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("real/desi/coadd-sv3-bright-10145.fits"), dir.path().join("coadd-sv3-bright-10145.fits"))
        .unwrap();
    std::fs::write(dir.path().join("redrock-sv3-bright-10145.fits"), b"not a redrock file").unwrap();
    let out = dir.path().join("out");
    ingest(Survey::Desi, dir.path(), &out);
    let report = read_report(&out);
    let file = file_row(&report, "coadd-sv3-bright-10145.fits");
    assert_eq!(file.status, "failed", "{}", file.reason);
    let targets: Vec<&Report> = report.iter().filter(|r| r.level == "target").collect();
    assert_eq!(targets.len(), 5, "every FIBERMAP row is still accounted for");
    assert!(targets.iter().all(|r| r.status == "failed" && r.reason.contains("redrock-sv3-bright-10145.fits")));
}
