//! `starpipe mock --survey`: one mock survey written to a directory (its files, the label table and,
//! when it shares stars with a LAMOST mock, the crossmatch), and what was written.

use super::desi::{self, DesiExtras, RowKind};
use super::lamost;
use super::library::Library;
use super::{MockError, SnrDistribution, Stars, builtin_library};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files a mock survey is written as.
pub enum SurveyFiles {
    /// One LAMOST LRS file per star.
    Lamost,
    /// DESI healpix coadds of `rows_per_coadd` FIBERMAP rows, with their redrock files.
    Desi { rows_per_coadd: usize, extras: DesiExtras },
}

/// One mock survey: where, which stars and how they are observed.
pub struct MockRun<'a> {
    pub out: PathBuf,
    pub stars: Stars<'a>,
    /// Stars to draw (emulated stars; a library renders each of its stars `repeats` times instead).
    pub n: usize,
    pub seed: u64,
    pub snr_dist: SnrDistribution,
    /// Fraction of files damaged on purpose (for ingest's error paths), 0–1.
    pub corrupt_frac: f64,
}

/// What a mock run wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum MockSummary {
    Lamost { files: usize, damaged: usize },
    Desi { coadds: usize, rows: usize, good_stars: usize, crossmatch_pairs: Option<usize> },
}

/// How a mock run reports progress: the number of files it will write (and their unit), then one
/// tick per file. The CLI draws a bar; a library caller may ignore both.
pub trait MockProgress: Sync {
    fn start(&self, total: u64, unit: &'static str);
    fn tick(&self);
}

/// No progress reported.
impl MockProgress for () {
    fn start(&self, _: u64, _: &'static str) {}
    fn tick(&self) {}
}

/// Writes the mock survey `run` as `files`: the survey's files, `labels.parquet`/`.csv` and (DESI
/// sharing stars with a LAMOST mock) `crossmatch.parquet`/`.csv`.
pub fn run_mock(run: &MockRun, files: &SurveyFiles, progress: &dyn MockProgress) -> Result<MockSummary, MockError> {
    if !(0.0..=1.0).contains(&run.corrupt_frac) {
        return Err(MockError::Invalid(format!("the damaged fraction must be within 0..1, got {}", run.corrupt_frac)));
    }
    match files {
        SurveyFiles::Lamost => {
            progress.start(run.stars.count(run.n) as u64, "files");
            let stars =
                lamost::generate_lamost(&run.out, run.stars, run.n, run.seed, run.snr_dist, run.corrupt_frac, &|| {
                    progress.tick()
                })?;
            lamost::write_label_catalog(&run.out, &stars)?;
            let damaged = stars.iter().filter(|s| s.corruption.is_some()).count();
            Ok(MockSummary::Lamost { files: stars.len(), damaged })
        }
        SurveyFiles::Desi { rows_per_coadd, extras } => {
            let coadds = desi::coadds_needed(run.stars, run.n, *rows_per_coadd);
            progress.start((coadds + desi::revisits_needed(coadds, extras.revisit_fraction)) as u64, "coadds");
            let rows = desi::generate_desi(
                &run.out,
                run.stars,
                run.n,
                *rows_per_coadd,
                run.seed,
                run.snr_dist,
                run.corrupt_frac,
                extras,
                &|| progress.tick(),
            )?;
            desi::write_desi_labels(&run.out, &rows)?;
            let crossmatch_pairs =
                extras.overlap.as_ref().map(|o| desi::write_crossmatch(&run.out, &rows, o)).transpose()?;
            Ok(MockSummary::Desi {
                coadds: rows.iter().map(|r| &r.file).collect::<BTreeSet<_>>().len(),
                rows: rows.len(),
                good_stars: rows.iter().filter(|r| r.kind == RowKind::Star).count(),
                crossmatch_pairs,
            })
        }
    }
}

/// The library `name` names (a directory or `builtin:miles`), cut to the stars an id list names
/// when given (a file of one id per line with `#` comments, or `builtin:held-out`/`builtin:training`).
/// Returns the library and the listed ids that are not usable stars of it; none usable is an error.
pub fn open_library(name: &Path, ids: Option<&Path>) -> Result<(Library, Vec<i64>), MockError> {
    // The id list first: a wrong list is refused before the library (14 MB built in) is unpacked.
    let Some(path) = ids else { return Ok((builtin_library::open_library(name)?, Vec::new())) };
    let text = builtin_library::id_list_text(path)?;
    let bad = |message: String| MockError::IdList { path: path.to_path_buf(), message };
    let wanted: Vec<i64> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<i64>().map_err(|_| bad(format!("'{l}' is not an integer id"))))
        .collect::<Result<_, _>>()?;
    let mut library = builtin_library::open_library(name)?;
    let unknown = library.retain_ids(&wanted);
    if library.stars.is_empty() {
        return Err(bad(format!("none of its ids is a usable star of the library {}", name.display())));
    }
    Ok((library, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_fraction_outside_0_1_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mock");
        let run = MockRun {
            out: out.clone(),
            stars: Stars::builtin(),
            n: 2,
            seed: 1,
            snr_dist: SnrDistribution { min: 20.0, max: 80.0 },
            corrupt_frac: 1.5,
        };
        let err = run_mock(&run, &SurveyFiles::Lamost, &()).unwrap_err();
        assert!(err.to_string().contains("1.5"), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn a_lamost_mock_reports_its_files_and_ticks_once_per_file() {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        struct Count(AtomicU64, AtomicU64);
        impl MockProgress for Count {
            fn start(&self, total: u64, unit: &'static str) {
                assert_eq!(unit, "files");
                self.0.store(total, Relaxed);
            }
            fn tick(&self) {
                self.1.fetch_add(1, Relaxed);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let run = MockRun {
            out: dir.path().join("mock"),
            stars: Stars::builtin(),
            n: 3,
            seed: 7,
            snr_dist: SnrDistribution { min: 20.0, max: 80.0 },
            corrupt_frac: 0.0,
        };
        let count = Count(AtomicU64::new(0), AtomicU64::new(0));
        let summary = run_mock(&run, &SurveyFiles::Lamost, &count).unwrap();
        assert_eq!(summary, MockSummary::Lamost { files: 3, damaged: 0 });
        assert_eq!((count.0.load(Relaxed), count.1.load(Relaxed)), (3, 3));
        assert!(run.out.join("labels.parquet").exists());
    }
}
