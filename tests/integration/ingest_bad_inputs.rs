//! Bad inputs never stop a run: each kind ends as a `failed` report row naming the reason, and the
//! good files beside them are still written.

use crate::common::*;
use fitsio::FitsFile;
use fitsio::tables::{ColumnDataType, ColumnDescription};
use starpipe::artifacts::ShardSpec;
use starpipe::ingest::Survey;
use starpipe::ingest::record::Status;
use std::path::Path;

const GOOD: &str = "real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits";

/// A copy of the uncompressed real LAMOST file with one row of its 5×N image rewritten.
fn edited_copy(dest: &Path, row: usize, value: f32) {
    std::fs::copy(data(GOOD), dest).unwrap();
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut f = FitsFile::edit(dest).unwrap();
    let hdu = f.primary_hdu().unwrap();
    let mut img: Vec<f32> = hdu.read_image(&mut f).unwrap();
    let npix = img.len() / 5;
    img[row * npix..(row + 1) * npix].fill(value);
    hdu.write_image(&mut f, &img).unwrap();
}

use std::os::unix::fs::PermissionsExt;

fn empty_fits(dest: &Path) {
    FitsFile::create(dest).open().unwrap();
}

fn coadd_with_mismatched_columns(dest: &Path) {
    let mut f = FitsFile::create(dest).open().unwrap();
    let col = |name: &str, n: usize| {
        ColumnDescription::new(name).with_type(ColumnDataType::Float).that_repeats(n).create().unwrap()
    };
    let cols = [col("FLUX", 100), col("IVAR", 50), col("WAVELENGTH", 100), col("ORMASK", 100)];
    let hdu = f.create_table("COADD", &cols).unwrap();
    hdu.write_col(&mut f, "FLUX", &vec![1.0f32; 100]).unwrap();
    hdu.write_col(&mut f, "IVAR", &[1.0f32; 50]).unwrap();
    let wave: Vec<f32> = (0..100).map(|i| 4000.0 + i as f32).collect();
    hdu.write_col(&mut f, "WAVELENGTH", &wave).unwrap();
    hdu.write_col(&mut f, "ORMASK", &vec![0.0f32; 100]).unwrap();
}

/// Ingests a good LAMOST file beside one made by `make`, and checks that the bad one fails with a
/// reason mentioning `reason` while the good one is still written.
fn assert_bad_file_fails(make: impl Fn(&Path), reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(data(GOOD), inputs.join("a-good.fits")).unwrap();
    make(&inputs.join("b-bad.fits"));
    let out = dir.path().join("out");
    let summary = ingest(Survey::Lamost, &inputs, &out);
    assert_eq!((summary.files(Status::Written), summary.files(Status::Failed)), (1, 1), "{:?}", summary.counts);
    let report = read_report(&out);
    let bad = file_row(&report, "b-bad.fits");
    assert_eq!(bad.status, "failed");
    assert!(bad.reason.contains(reason), "reason '{}' should mention '{reason}'", bad.reason);
    assert_eq!(file_row(&report, "a-good.fits").status, "written");
    assert_eq!(read_spectra(&out).height(), 1);
}

#[test]
fn truncated_file_fails() {
    let bytes = std::fs::read(data(GOOD)).unwrap();
    assert_bad_file_fails(|p| std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap(), "truncated");
}

#[test]
fn truncated_gzip_file_fails() {
    let bytes = std::fs::read(data("real/lamost/coadd_bintable/spec-55859-F5902_sp01-001.fits.gz")).unwrap();
    assert_bad_file_fails(|p| std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap(), "gzip");
}

#[test]
fn not_fits_file_fails() {
    assert_bad_file_fails(|p| std::fs::write(p, b"this is a text file, not FITS\n").unwrap(), "cannot open as FITS");
}

#[test]
fn missing_hdu_fails() {
    assert_bad_file_fails(empty_fits, "no COADD table");
}

#[test]
fn wrong_shapes_fail() {
    assert_bad_file_fails(coadd_with_mismatched_columns, "wrong shape");
}

#[test]
fn all_zero_ivar_fails() {
    assert_bad_file_fails(|p| edited_copy(p, 1, 0.0), "no usable pixel");
}

#[test]
fn nan_flux_fails() {
    assert_bad_file_fails(|p| edited_copy(p, 0, f32::NAN), "NaN");
}

/// One finite but absurd flux pixel (−2.06e33, a flipped exponent, with a positive ivar) used to
/// drag the continuum fit and overflow the normalised ivar to +inf. It is masked; the rest of the
/// spectrum comes out as it does from the pristine file.
#[test]
fn one_absurd_finite_pixel_is_masked_and_the_spectrum_is_unharmed() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, damaged) = (dir.path().join("clean"), dir.path().join("damaged"));
    std::fs::create_dir_all(&clean).unwrap();
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::copy(data(GOOD), clean.join("a.fits")).unwrap();
    let dest = damaged.join("a.fits");
    std::fs::copy(data(GOOD), &dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
    {
        let mut f = FitsFile::edit(&dest).unwrap();
        let hdu = f.primary_hdu().unwrap();
        let mut img: Vec<f32> = hdu.read_image(&mut f).unwrap();
        let npix = img.len() / 5;
        img[npix / 2] = -2.06e33; // flux row 0, mid-spectrum; its ivar stays positive
        assert!(img[npix + npix / 2] > 0.0);
        hdu.write_image(&mut f, &img).unwrap();
    }
    let spectra = |input: &Path, out: &Path| {
        let summary = ingest(Survey::Lamost, input, out);
        assert_eq!(summary.files(Status::Written), 1, "{:?}", summary.counts);
        let df = read_spectra(out);
        let col = |c: &str| -> Vec<f32> {
            df.column(c).unwrap().array().unwrap().get_inner().f32().unwrap().into_no_null_iter().collect()
        };
        (col("flux"), col("ivar"))
    };
    let (flux0, ivar0) = spectra(&clean, &dir.path().join("out-clean"));
    let (flux1, ivar1) = spectra(&damaged, &dir.path().join("out-damaged"));
    assert!(flux1.iter().chain(&ivar1).all(|v| v.is_finite()) && ivar1.iter().all(|&v| v >= 0.0));
    let changed = (0..flux0.len()).filter(|&j| (flux0[j] - flux1[j]).abs() > 1e-3 * flux0[j].abs().max(1e-3)).count();
    assert!(changed <= 3, "{changed} grid pixels differ from the pristine spectrum");
    let masked_more = (0..ivar0.len()).filter(|&j| ivar0[j] > 0.0 && ivar1[j] == 0.0).count();
    assert!((1..=3).contains(&masked_more), "the absurd pixel is masked: {masked_more} grid pixels");
}

#[test]
fn unwritable_output_stops_the_run_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a-file");
    std::fs::write(&out, b"").unwrap();
    let err = starpipe::ingest::run_ingest(&options(Survey::Lamost, &data("real/lamost"), &out)).unwrap_err();
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn missing_manifest_entries_and_broken_desi_files_are_failed_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    empty_fits(&dir.path().join("coadd-empty.fits"));
    let bytes = std::fs::read(data("real/desi/coadd-sv3-bright-10145.fits")).unwrap();
    std::fs::write(dir.path().join("coadd-truncated.fits"), &bytes[..bytes.len() / 3]).unwrap();
    let manifest = dir.path().join("manifest.txt");
    let good = data("real/desi/coadd-sv3-bright-10145.fits");
    std::fs::write(
        &manifest,
        format!("coadd-empty.fits\ncoadd-truncated.fits\ndoes-not-exist.fits\n{}\n", good.display()),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = ingest(Survey::Desi, &manifest, &out);
    assert_eq!(summary.inputs, 4);
    let report = read_report(&out);
    assert!(file_row(&report, "coadd-empty.fits").reason.contains("missing HDU FIBERMAP"));
    let truncated = file_row(&report, "coadd-truncated.fits");
    assert_eq!(truncated.status, "failed");
    assert!(truncated.reason.starts_with("truncated"), "{}", truncated.reason);
    assert_eq!(file_row(&report, "does-not-exist.fits").reason, "file not found");
    assert_eq!(file_row(&report, "coadd-sv3-bright-10145.fits").status, "written");
}

#[test]
fn a_bad_command_line_is_an_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let err = starpipe::ingest::run_ingest(&options(Survey::Lamost, &dir.path().join("nope"), &dir.path().join("out")))
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing is written for a bad command line");
}

#[test]
fn a_folder_without_inputs_for_the_survey_is_an_error_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err =
        |survey, input: &Path| starpipe::ingest::run_ingest(&options(survey, input, &out)).unwrap_err().to_string();
    let e = err(Survey::Desi, &data("real/lamost"));
    assert!(e.contains("no desi input files") && e.contains("--survey lamost?"), "{e}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(err(Survey::Lamost, &empty).contains("empty"));
    let manifest = dir.path().join("none.txt");
    std::fs::write(&manifest, "# nothing\n").unwrap();
    assert!(err(Survey::Lamost, &manifest).contains("lists no file"));
    assert!(!out.exists(), "nothing written");
}

#[test]
fn desi_files_ingested_as_lamost_exit_nonzero_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for f in ["coadd-4-80613-thru20210324.fits", "redrock-4-80613-thru20210324.fits"] {
        std::fs::copy(data(&format!("real/desi/{f}")), input.join(f)).unwrap();
    }
    let o = crate::models::run(
        &["ingest", "--survey", "lamost", "--no-progress"],
        &[("--input", &input), ("--out", &dir.path().join("out"))],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("every one of the 2 input files") && err.contains("--survey desi?"), "{err}");
    // Accounted for all the same.
    assert_eq!(read_report(&dir.path().join("out")).len(), 2);
}

#[test]
fn a_second_shard_count_into_one_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for i in 0..2 {
        let opts = options(Survey::Lamost, &data("real/lamost"), &out).with_shard(ShardSpec { index: i, count: 2 });
        starpipe::ingest::run_ingest(&opts).unwrap();
    }
    let opts = options(Survey::Lamost, &data("real/lamost"), &out).with_shard(ShardSpec { index: 0, count: 3 });
    let e = starpipe::ingest::run_ingest(&opts).unwrap_err().to_string();
    assert!(e.contains("split into 2 task(s)") && e.contains("one of 3"), "{e}");
    assert!(!std::fs::read_dir(&out).unwrap().flatten().any(|f| f.file_name().to_string_lossy().contains("-of-00003")));
}

#[test]
fn a_redrock_file_listed_as_an_input_is_skipped_as_a_companion() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.txt");
    let (c, r) =
        (data("real/desi/coadd-4-80613-thru20210324.fits"), data("real/desi/redrock-4-80613-thru20210324.fits"));
    std::fs::write(&manifest, format!("{}\n{}\n", c.display(), r.display())).unwrap();
    let out = dir.path().join("out");
    ingest(Survey::Desi, &manifest, &out);
    let row = file_row(&read_report(&out), "redrock-4-80613-thru20210324.fits").clone();
    assert_eq!(row.status, "skipped");
    assert!(row.reason.contains("companion of its coadd"), "{}", row.reason);
}
