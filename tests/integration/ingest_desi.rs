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
    std::fs::write(&manifest, format!("# per-exposure file\n{}\n", data("real/desi/spectra-sv3-dark-26065.fits").display())).unwrap();
    let out = dir.path().join("out");
    let summary = ingest(Survey::Desi, &manifest, &out);
    assert_eq!(summary.inputs, 1);
    let report = read_report(&out);
    assert_eq!(report.iter().filter(|r| r.level == "target").count(), 5);
    let r4 = report.iter().find(|r| r.source_row == Some(4)).unwrap();
    assert!(r4.reason.contains("FIBERSTATUS"), "FIBERSTATUS=512 (BADPOSITION) is disallowed: {}", r4.reason);
}
