//! `starpipe mock`: flags → a mock survey, the emulator's quality report, or one emulated
//! spectrum.

use super::args::at_least_one;
use super::console::progress_bar;
use anyhow::{Context, Result, bail};
use clap::Args;
use starpipe::ingest::Survey;
use starpipe::mock::lamost::SnrDistribution;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["emulator_report", "emulate", "survey"])))]
pub struct MockArgs {
    /// Write a mock survey of this kind.
    #[arg(long, value_enum, requires = "out")]
    pub survey: Option<Survey>,
    /// Number of stars (LAMOST: files; DESI: about this many good stars).
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub n: usize,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Random seed: the same seed writes the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// S/N distribution of the stars (per-pixel S/N in the g band): loguniform:MIN:MAX.
    #[arg(long, default_value = "loguniform:5:150")]
    pub snr_dist: SnrDistribution,
    /// DESI: FIBERMAP rows per coadd (about 62 % of them good stars; the rest galaxies, quasars,
    /// sky fibres, unassigned fibres and stars on bad fibres).
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub rows_per_coadd: usize,
    /// Fraction of files damaged on purpose (LAMOST: truncated, bad header, NaN flux, missing HDU;
    /// DESI: truncated coadd, NaN star flux); the label catalogue says which.
    #[arg(long, default_value_t = 0.0, value_parser = super::args::fraction)]
    pub corrupt_frac: f64,
    /// Render the observed spectra of a labelled spectral library instead of emulated stars
    /// (layout: `.npz` spectra with `wave_air` or `wave_vacuum` and `fwhm_angstrom`, plus a
    /// `*params*.csv` with teff, logg, feh; MILES as shipped works). Label files gain the library
    /// star id. DESI: every FIBERMAP row is a star. --n is then the library size × --repeats.
    /// `builtin:miles` is the MILES library compiled into starpipe (data/miles/).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["emulator", "n"])]
    pub library: Option<PathBuf>,
    /// DESI: observe this fraction of the pixels a second time, in the dark program: repeat spectra
    /// of the same TARGETIDs (own S/N, calibration and noise), as a release has them.
    #[arg(long, default_value_t = 0.0, conflicts_with = "library", value_parser = super::args::fraction)]
    pub revisit_fraction: f64,
    /// DESI: observe stars of this LAMOST mock directory too (its labels.parquet): each star row
    /// takes one of them with probability --overlap-fraction, with its true labels and its mock Gaia
    /// id as REF_ID, so the two catalogues share stars (`repeats --star-ids … --star-id-column
    /// gaia_source_id` pairs them across surveys). Also writes crossmatch.parquet/.csv (obsid,
    /// TARGETID pairs; schemas/crossmatch.toml) for `train-encoder --pairs`.
    #[arg(long, value_name = "DIR", conflicts_with = "library")]
    pub overlap: Option<PathBuf>,
    /// With --overlap: the fraction of DESI star rows that are LAMOST mock stars.
    #[arg(long, default_value_t = 0.3, requires = "overlap", value_parser = super::args::fraction)]
    pub overlap_fraction: f64,
    /// With --library: render each star this many times (own S/N, radial velocity, calibration).
    #[arg(long, default_value_t = 1, value_parser = at_least_one, requires = "library")]
    pub repeats: usize,
    /// With --library: render only the stars listed in this file (one id per line, `#` comments),
    /// e.g. the stars an emulator refit left out. `builtin:held-out` and `builtin:training` are the
    /// built-in emulator's split of MILES: stars it never saw (for calibration), and those it was
    /// fitted on inside the mock's label domain (for training renders).
    #[arg(long, value_name = "FILE", requires = "library")]
    pub library_ids: Option<PathBuf>,
    /// Emulator coefficients to use instead of the built-in ones (a safetensors file written by
    /// scripts/emulator/fit_miles_emulator.py, e.g. refitted without a validation fold).
    #[arg(long, value_name = "FILE")]
    pub emulator: Option<PathBuf>,
    /// Print the emulator's quality: held-out and leave-one-out residual RMS per wavelength region
    /// and Teff regime.
    #[arg(long)]
    pub emulator_report: bool,
    /// Print the emulated spectrum of one star as CSV (vacuum Å, flux normalised to mean 1 over
    /// 4000–7000 Å air, parametric = 1 past MILES' red end).
    #[arg(long, value_name = "TEFF,LOGG,FEH", value_parser = parse_labels)]
    pub emulate: Option<[f64; 3]>,
}

fn parse_labels(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> =
        s.split(',').map(|x| x.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| format!("'{s}': {e}"))?;
    <[f64; 3]>::try_from(v).map_err(|_| format!("'{s}': need three comma-separated numbers TEFF,LOGG,FEH"))
}

/// The library `--library` names, cut to `--library-ids` when given; what was left out is logged.
fn open_library(name: &std::path::Path, ids: Option<&std::path::Path>) -> Result<starpipe::mock::Library> {
    let (library, unknown) = starpipe::mock::run::open_library(name, ids)?;
    for (reason, count, example) in &library.left_out {
        tracing::info!("library {}: {count} stars left out: {reason} (e.g. {example})", name.display());
    }
    if let (Some(path), Some(first)) = (ids, unknown.first()) {
        tracing::warn!(
            "{}: {} ids are not usable library stars (e.g. {first}); rendering the other {}",
            path.display(),
            unknown.len(),
            library.stars.len()
        );
    }
    Ok(library)
}

/// The progress bar of a mock run, made when the run says how many files it will write.
#[derive(Default)]
struct MockBar(std::sync::OnceLock<indicatif::ProgressBar>);

impl starpipe::mock::run::MockProgress for MockBar {
    fn start(&self, total: u64, unit: &'static str) {
        let _ = self.0.set(progress_bar(total, "mock", unit));
    }
    fn tick(&self) {
        if let Some(bar) = self.0.get() {
            bar.inc(1);
        }
    }
}

pub fn mock(a: MockArgs) -> Result<()> {
    use starpipe::mock::{Emulator, PARAMETRIC_FROM_VACUUM, REPORT_JSON, Stars, extend_to_red};
    let emulator_file = match &a.emulator {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(Emulator::from_safetensors(&bytes).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let library = a.library.as_deref().map(|d| open_library(d, a.library_ids.as_deref())).transpose()?;
    let stars = match (&library, &emulator_file) {
        (Some(library), _) => Stars::Library { library, repeats: a.repeats },
        (None, Some(e)) => Stars::Emulated(e),
        (None, None) => Stars::builtin(),
    };
    if let Some(survey) = a.survey {
        use starpipe::mock::desi::{DesiExtras, Overlap};
        use starpipe::mock::run::{MockRun, MockSummary, SurveyFiles, run_mock};
        let out = a.out.clone().expect("clap requires --out with --survey");
        let files = match survey {
            Survey::Lamost => SurveyFiles::Lamost,
            Survey::Desi => SurveyFiles::Desi {
                rows_per_coadd: a.rows_per_coadd,
                extras: DesiExtras {
                    revisit_fraction: a.revisit_fraction,
                    overlap: a
                        .overlap
                        .as_deref()
                        .map(|d| Overlap::from_lamost_mock(d, a.overlap_fraction))
                        .transpose()?,
                },
            },
        };
        let run = MockRun { out, stars, n: a.n, seed: a.seed, snr_dist: a.snr_dist, corrupt_frac: a.corrupt_frac };
        let start = std::time::Instant::now();
        let bar = MockBar::default();
        let summary = run_mock(&run, &files, &bar);
        if let Some(b) = bar.0.get() {
            b.finish_and_clear();
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let out = run.out.display();
        match summary? {
            MockSummary::Lamost { files, damaged } => {
                println!("mock lamost: {files} files ({damaged} damaged on purpose) in {out}");
                println!("  labels: labels.parquet, labels.csv; {:.0} spectra/s", files as f64 / secs);
            }
            MockSummary::Desi { coadds, rows, good_stars, crossmatch_pairs } => {
                println!(
                    "mock desi: {coadds} coadds + redrock files, {rows} FIBERMAP rows ({good_stars} good stars) in {out}"
                );
                println!("  labels: labels.parquet, labels.csv; {:.0} rows/s", rows as f64 / secs);
                if let Some(n) = crossmatch_pairs {
                    println!("  crossmatch: crossmatch.parquet, crossmatch.csv; {n} (obsid, TARGETID) pairs");
                }
            }
        }
    }
    if a.emulator_report {
        print!("{}", starpipe::mock::emulator_report_text(REPORT_JSON).map_err(anyhow::Error::msg)?);
    }
    if let Some(v) = a.emulate {
        let (teff, logg, feh) = (v[0], v[1], v[2]);
        if !Emulator::covers(teff, logg, feh) {
            bail!("--emulate {teff},{logg},{feh} is outside what MILES covers ({})", Emulator::COVERAGE);
        }
        let e = emulator_file.as_ref().unwrap_or_else(|| Emulator::builtin());
        let (wave, flux) = extend_to_red(e.wave_vacuum(), &e.spectrum(teff, logg, feh), teff, logg, feh);
        println!("wavelength_vacuum_angstrom,flux,parametric");
        for (w, f) in wave.iter().zip(flux) {
            println!("{w:.3},{f:.6},{}", u8::from(*w >= PARAMETRIC_FROM_VACUUM));
        }
    }
    Ok(())
}
