//! The `starpipe` command line. Library errors are typed; here they become `anyhow` reports.

use anyhow::{Context, Result, bail};
use arg_values::{at_least_one, fraction, positive};
use clap::{Args, Parser, Subcommand, ValueEnum};
use starpipe::artifacts::ShardSpec;
use starpipe::grid::{GridPreset, LogGrid};
use starpipe::ingest::desi::DesiOptions;
use starpipe::ingest::record::Status;
use starpipe::ingest::select::SelectionRules;
use starpipe::ingest::{IngestOptions, IngestSummary, Survey, run_ingest};
use starpipe::mock::lamost::SnrDistribution;
use starpipe::preprocess::{ContinuumConfig, PreprocessConfig};
use std::path::PathBuf;

mod arg_values;
mod catalog_cli;
mod console;
mod encoder_cli;
mod model_cli;
mod report_cli;
mod run_cli;
mod slurm_cli;

#[derive(Parser, Debug)]
#[command(
    name = "starpipe",
    version,
    about = "Survey spectra (LAMOST, DESI) → normalised spectra → stellar-parameter catalogs"
)]
struct Cli {
    /// Log line format on stderr. Verbosity follows RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read survey FITS files, select stars, put them on one rest-frame grid, normalise the
    /// continuum, and write normalised-spectra Parquet shards plus an ingest report.
    ///
    /// Output in --out: spectra-<task>-<k>.parquet (schemas/normalized_spectra.toml),
    /// report-<task>-<k>.parquet (schemas/ingest_report.toml), ingest-summary-<task>.json.
    /// Re-running with the same arguments resumes: finished shards are kept, the rest is redone.
    Ingest(IngestArgs),
    /// Mock surveys from real stars: spectra emulated from the MILES library at labels drawn from a
    /// Milky Way-like mix, rendered through the instrument and written in the survey's real file
    /// format, with a label catalogue.
    ///
    /// Output in --out: the spectrum files (DESI: a healpix tree main/bright/PIXGROUP/PIXNUM/ with
    /// coadd and redrock files), labels.parquet and labels.csv (schemas/mock_*_labels.toml).
    Mock(MockArgs),
    /// Pre-train an MLP on normalised spectra joined to a label table: Teff, log g, [Fe/H] each
    /// as a mean and a calibrated 1σ (Gaussian likelihood).
    ///
    /// Output in --out: model.safetensors and model-card.json (grid window, label scaling and
    /// ranges, σ calibration, data hash, seed, validation metrics).
    Train(model_cli::TrainArgs),
    /// Adapt a pre-trained model to another survey: zeroshot, full, lora or reshead, with
    /// --n-train of its labels (taken outside a fixed test split).
    ///
    /// Output in --out: adapter.safetensors (none for zeroshot) and adapter-card.json, which
    /// names the base model by hash.
    Finetune(model_cli::FinetuneArgs),
    /// Fit an error model, σ = √((k·σ_net)² + floor²) per parameter, on labelled stars the model
    /// never saw (renders of real library stars: `mock --library`), by maximum likelihood with
    /// > 5σ outliers rejected.
    ///
    /// Output in --out: a copy of the model (or --adapter) directory whose card holds the error
    /// model; infer, evaluate and the catalogue then report the calibrated errors.
    Calibrate(model_cli::CalibrateArgs),
    /// Label-free checks of a catalogue: pairs of spectra of one star (repeats; with two
    /// catalogues, the same star in both surveys), their scatter (x₁ − x₂)/√2 against the errors
    /// the catalogue reports, and the median offset between surveys.
    ///
    /// Output in --out: repeats.parquet (schemas/repeats.toml) and repeats.md.
    Repeats(model_cli::RepeatsArgs),
    /// Score a model and its adapters on the held-out test stars: bias, σ, robust σ, MAE,
    /// outliers, uncertainty calibration, bootstrap intervals, per parameter and [Fe/H] regime.
    ///
    /// Output in --out: evaluation.md, evaluation.parquet, evaluation-predictions.parquet.
    Evaluate(model_cli::EvaluateArgs),
    /// Predict Teff, log g, [Fe/H] with errors for every spectrum of the shards, in batches.
    ///
    /// Output in --out: predictions-<shard>.parquet per input shard (schemas/predictions.toml).
    /// Re-running skips shards already predicted with the same model and adapter.
    Infer(model_cli::InferArgs),
    /// Join predictions with the spectra metadata into the catalogue: one row per spectrum and
    /// head with position (_healpix_29), input quality, estimates with errors, provenance, quality
    /// flags and success.
    ///
    /// Output: one Parquet file or a HATS directory (schemas/catalog.toml); units, UCDs and
    /// descriptions in the field metadata and as a VOParquet VOTable.
    Catalog(catalog_cli::CatalogArgs),
    /// Pre-train the transformer encoder by masked-token reconstruction on normalised spectra.
    ///
    /// Output in --out: encoder.safetensors and encoder-card.json.
    TrainEncoder(encoder_cli::TrainEncoderArgs),
    /// Embed spectra with a trained encoder.
    ///
    /// Output in --out: embeddings-<shard>.parquet per input shard (schemas/embeddings.toml).
    Embed(encoder_cli::EmbedArgs),
    /// Plots and one HTML page: predicted vs reference per parameter and strategy, residuals
    /// against [Fe/H], the catalogue's Kiel diagram, S/N and flag distributions, metrics tables,
    /// and the ingest's failed and skipped inputs by reason.
    ///
    /// Output in --out: index.html and *.png.
    Report(report_cli::ReportArgs),
    /// Run a pipeline file: its stages in dependency order, skipping tasks that finished earlier
    /// with the same inputs and parameters (records in WORKDIR/.starpipe/done/). Without a file,
    /// the built-in demo.
    Run(run_cli::RunArgs),
    /// Run a pipeline on a SLURM cluster: job arrays over the shards of the per-file stages,
    /// dependent jobs for the others.
    #[command(subcommand)]
    Slurm(slurm_cli::SlurmCommand),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["emulator_report", "emulate", "survey"])))]
struct MockArgs {
    /// Write a mock survey of this kind.
    #[arg(long, value_enum, requires = "out")]
    survey: Option<Survey>,
    /// Number of stars (LAMOST: files; DESI: about this many good stars).
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    n: usize,
    /// Output directory (created if missing).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed: the same seed writes the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// S/N distribution of the stars (per-pixel S/N in the g band): loguniform:MIN:MAX.
    #[arg(long, default_value = "loguniform:5:150")]
    snr_dist: SnrDistribution,
    /// DESI: FIBERMAP rows per coadd (about 62 % of them good stars; the rest galaxies, quasars,
    /// sky fibres, unassigned fibres and stars on bad fibres).
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    rows_per_coadd: usize,
    /// Fraction of files damaged on purpose (LAMOST: truncated, bad header, NaN flux, missing HDU;
    /// DESI: truncated coadd, NaN star flux); the label catalogue says which.
    #[arg(long, default_value_t = 0.0)]
    corrupt_frac: f64,
    /// Render the observed spectra of a labelled spectral library instead of emulated stars
    /// (layout: `.npz` spectra with `wave_air` or `wave_vacuum` and `fwhm_angstrom`, plus a
    /// `*params*.csv` with teff, logg, feh; MILES as shipped works). Label files gain the library
    /// star id. DESI: every FIBERMAP row is a star. --n is then the library size × --repeats.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["emulator", "n"])]
    library: Option<PathBuf>,
    /// DESI: observe this fraction of the pixels a second time, in the dark program: repeat spectra
    /// of the same TARGETIDs (own S/N, calibration and noise), as a release has them.
    #[arg(long, default_value_t = 0.0, conflicts_with = "library", value_parser = arg_values::fraction)]
    revisit_fraction: f64,
    /// DESI: observe stars of this LAMOST mock directory too (its labels.parquet): each star row
    /// takes one of them with probability --overlap-fraction, with its true labels and its mock Gaia
    /// id as REF_ID, so the two catalogues share stars (`repeats --star-ids … --star-id-column
    /// gaia_source_id` pairs them across surveys).
    #[arg(long, value_name = "DIR", conflicts_with = "library")]
    overlap: Option<PathBuf>,
    /// With --overlap: the fraction of DESI star rows that are LAMOST mock stars.
    #[arg(long, default_value_t = 0.3, requires = "overlap", value_parser = arg_values::fraction)]
    overlap_fraction: f64,
    /// With --library: render each star this many times (own S/N, radial velocity, calibration).
    #[arg(long, default_value_t = 1, value_parser = at_least_one, requires = "library")]
    repeats: usize,
    /// With --library: render only the stars listed in this file (one id per line, `#` comments),
    /// e.g. the stars an emulator refit left out.
    #[arg(long, value_name = "FILE", requires = "library")]
    library_ids: Option<PathBuf>,
    /// Emulator coefficients to use instead of the built-in ones (a safetensors file written by
    /// scripts/emulator/fit_miles_emulator.py, e.g. refitted without a validation fold).
    #[arg(long, value_name = "FILE")]
    emulator: Option<PathBuf>,
    /// Print the emulator's quality: held-out and leave-one-out residual RMS per wavelength region
    /// and Teff regime.
    #[arg(long)]
    emulator_report: bool,
    /// Print the emulated spectrum of one star as CSV (vacuum Å, flux normalised to mean 1 over
    /// 4000–7000 Å air, parametric = 1 past MILES' red end).
    #[arg(long, value_name = "TEFF,LOGG,FEH", value_parser = parse_labels)]
    emulate: Option<[f64; 3]>,
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Which survey's files to read.
    #[arg(long, value_enum)]
    survey: Survey,
    /// A directory (walked recursively; LAMOST: *.fits, *.fits.gz; DESI: coadd-*.fits with
    /// redrock-*.fits beside them) or a manifest file with one path per line.
    #[arg(long)]
    input: PathBuf,
    /// Output directory for shards and report (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Process only task i of N (0-based): inputs i, i+N, i+2N, … of the ordered list. For job arrays.
    #[arg(long, value_name = "i/N", default_value = "0/1")]
    shard: ShardSpec,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "K", value_parser = at_least_one)]
    threads: Option<usize>,
    /// Spectra per output shard.
    #[arg(long, default_value_t = 50_000, value_parser = at_least_one)]
    shard_size: usize,
    /// Rows per Parquet row group (bounds writer memory: ~31 kB per row on the full LAMOST grid).
    #[arg(long, default_value_t = 4096, value_parser = at_least_one)]
    row_group_rows: usize,
    /// Output wavelength window on the LAMOST log grid: lamost = 3700–9099 Å (3909 px),
    /// specclip = 3999–5599 Å (1462 px).
    #[arg(long, value_enum, default_value_t = GridPreset::Lamost)]
    grid: GridPreset,
    /// Custom window start (Å, vacuum): the grid keeps LAMOST pixels with centres in [min, max].
    #[arg(long, requires = "wave_max")]
    wave_min: Option<f64>,
    /// Custom window end (Å, vacuum).
    #[arg(long, requires = "wave_min")]
    wave_max: Option<f64>,
    /// Keep spectra in the observed frame (no Doppler correction).
    #[arg(long)]
    no_rest_frame: bool,
    /// Convolve DESI arms to this resolving power before resampling (bare flag: R = 1800, LAMOST's).
    #[arg(long, value_name = "R", num_args = 0..=1, default_missing_value = "1800", value_parser = positive)]
    degrade_to_r: Option<f64>,
    /// Chebyshev degree of the continuum fit per segment (1–6).
    #[arg(long, default_value_t = ContinuumConfig::default().degree as u16, value_parser = clap::value_parser!(u16).range(1..=6))]
    continuum_degree: u16,
    /// Skip spectra with a larger fraction of masked grid pixels.
    #[arg(long, default_value_t = 0.5, value_parser = fraction)]
    max_masked_fraction: f64,
    /// DESI: COADD_FIBERSTATUS bits that do not disqualify a fibre (comma list; 3 = RESTRICTED).
    #[arg(long, value_delimiter = ',', default_value = "3", value_parser = clap::value_parser!(u32).range(0..=31))]
    allow_fiberstatus_bits: Vec<u32>,
    /// DESI: largest |c·z| in km/s accepted for a star.
    #[arg(long, default_value_t = 1500.0, value_parser = positive)]
    max_abs_rv: f64,
    /// Exit with an error (after writing everything) when more than this fraction of the task's
    /// input files failed: a systemic problem (wrong survey, damaged transfer) rather than a few
    /// bad files. The failed files are listed in the report either way.
    #[arg(long, value_name = "F", value_parser = fraction)]
    max_failed_fraction: Option<f64>,
    /// Do not draw a progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(console::LogWriter).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn ingest(a: IngestArgs) -> Result<()> {
    let grid = match (a.wave_min, a.wave_max) {
        (Some(lo), Some(hi)) => LogGrid::lamost_between(lo, hi)
            .with_context(|| format!("--wave-min {lo} --wave-max {hi} selects no pixel of the LAMOST grid"))?,
        _ => LogGrid::preset(a.grid),
    };
    let mut pre = PreprocessConfig::new(grid);
    pre.rest_frame = !a.no_rest_frame;
    pre.degrade_to_r = a.degrade_to_r;
    pre.max_masked_fraction = a.max_masked_fraction as f32;
    pre.continuum.degree = usize::from(a.continuum_degree);
    let rules = SelectionRules {
        allowed_fiberstatus_bits: a.allow_fiberstatus_bits,
        max_abs_rv_kms: a.max_abs_rv,
        ..Default::default()
    };
    let opts = IngestOptions::new(a.survey, a.input, a.out.clone(), pre)
        .with_shard(a.shard)
        .with_threads(a.threads)
        .with_shard_size(a.shard_size)
        .with_row_group_rows(a.row_group_rows)
        .with_desi(DesiOptions { rules })
        .with_progress(!a.no_progress)
        .with_progress_bar((!a.no_progress).then(|| progress_bar(0, "ingest", "files")));
    let summary = run_ingest(&opts)?;
    print_summary(&summary, &a.out);
    if let Some(why) = summary.all_failed() {
        bail!("{why}; the reasons are in {}/report-{}-*.parquet", a.out.display(), a.shard.tag());
    }
    if let Some(max) = a.max_failed_fraction {
        let failed = summary.files(Status::Failed);
        let fraction = failed as f64 / summary.inputs.max(1) as f64;
        if fraction > max {
            bail!(
                "ingest task {}: {failed} of {} input files failed ({:.1} % > --max-failed-fraction {:.1} %); \
                 the reasons are in {}/report-{}-*.parquet",
                summary.task,
                summary.inputs,
                100.0 * fraction,
                100.0 * max,
                a.out.display(),
                a.shard.tag()
            );
        }
    }
    Ok(())
}

fn print_summary(s: &IngestSummary, out: &std::path::Path) {
    println!("ingest {} task {}: {} input files", s.survey, s.task, s.inputs);
    println!(
        "  files:   {} written, {} skipped, {} failed",
        s.files(Status::Written),
        s.files(Status::Skipped),
        s.files(Status::Failed)
    );
    if !s.counts.targets.is_empty() {
        println!(
            "  targets: {} written, {} skipped, {} failed",
            s.targets(Status::Written),
            s.targets(Status::Skipped),
            s.targets(Status::Failed)
        );
    }
    println!(
        "  spectra: {} in {} shard(s) ({} resumed from an earlier run)",
        s.counts.spectra,
        s.shards.len(),
        s.shards_resumed
    );
    let mut reasons: Vec<_> = s.counts.reasons.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !reasons.is_empty() {
        println!("  most common reasons (all of them are in the report):");
        for (r, n) in reasons.iter().take(10) {
            println!("    {n:>8}  {r}");
        }
    }
    println!("  output: {}", out.display());
}

use console::progress_bar;

fn parse_labels(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> =
        s.split(',').map(|x| x.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| format!("'{s}': {e}"))?;
    <[f64; 3]>::try_from(v).map_err(|_| format!("'{s}': need three comma-separated numbers TEFF,LOGG,FEH"))
}

/// The library `--library` names, cut to `--library-ids` when given; its left-out stars are logged.
fn open_library(dir: &std::path::Path, ids: Option<&std::path::Path>) -> Result<starpipe::mock::Library> {
    let mut library = starpipe::mock::Library::open(dir)?;
    for (reason, count, example) in &library.left_out {
        tracing::info!("library {}: {count} stars left out: {reason} (e.g. {example})", dir.display());
    }
    if let Some(path) = ids {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let wanted: Vec<i64> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(|l| l.parse::<i64>().with_context(|| format!("{}: '{l}' is not an integer id", path.display())))
            .collect::<Result<_>>()?;
        let unknown = library.retain_ids(&wanted);
        if !unknown.is_empty() {
            tracing::warn!(
                "{}: {} ids are not usable library stars (e.g. {}); rendering the other {}",
                path.display(),
                unknown.len(),
                unknown[0],
                library.stars.len()
            );
        }
        if library.stars.is_empty() {
            bail!("{}: none of its ids is a usable star of the library {}", path.display(), dir.display());
        }
    }
    Ok(library)
}

fn mock(a: MockArgs) -> Result<()> {
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
        let out = a.out.clone().expect("clap requires --out with --survey");
        if !(0.0..=1.0).contains(&a.corrupt_frac) {
            bail!("--corrupt-frac must be within 0..1, got {}", a.corrupt_frac);
        }
        let n = stars.count(a.n);
        match survey {
            Survey::Lamost => {
                let start = std::time::Instant::now();
                let bar = progress_bar(n as u64, "mock", "files");
                let stars = starpipe::mock::lamost::generate_lamost(
                    &out,
                    stars,
                    a.n,
                    a.seed,
                    a.snr_dist,
                    a.corrupt_frac,
                    &|| bar.inc(1),
                )?;
                bar.finish_and_clear();
                starpipe::mock::lamost::write_label_catalog(&out, &stars)?;
                let corrupt = stars.iter().filter(|s| s.corruption.is_some()).count();
                let secs = start.elapsed().as_secs_f64();
                println!("mock lamost: {} files ({corrupt} damaged on purpose) in {}", stars.len(), out.display());
                println!("  labels: labels.parquet, labels.csv; {:.0} spectra/s", stars.len() as f64 / secs.max(1e-9));
            }
            Survey::Desi => {
                let start = std::time::Instant::now();
                let extras = starpipe::mock::desi::DesiExtras {
                    revisit_fraction: a.revisit_fraction,
                    overlap: a
                        .overlap
                        .as_deref()
                        .map(|d| starpipe::mock::desi::Overlap::from_lamost_mock(d, a.overlap_fraction))
                        .transpose()?,
                };
                let coadds = starpipe::mock::desi::coadds_needed(stars, a.n, a.rows_per_coadd);
                let coadds = coadds + starpipe::mock::desi::revisits_needed(coadds, a.revisit_fraction);
                let bar = progress_bar(coadds as u64, "mock", "coadds");
                let rows = starpipe::mock::desi::generate_desi(
                    &out,
                    stars,
                    a.n,
                    a.rows_per_coadd,
                    a.seed,
                    a.snr_dist,
                    a.corrupt_frac,
                    &extras,
                    &|| bar.inc(1),
                )?;
                bar.finish_and_clear();
                starpipe::mock::desi::write_desi_labels(&out, &rows)?;
                let stars = rows.iter().filter(|r| r.kind == starpipe::mock::desi::RowKind::Star).count();
                let files = rows.iter().map(|r| &r.file).collect::<std::collections::BTreeSet<_>>().len();
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "mock desi: {files} coadds + redrock files, {} FIBERMAP rows ({stars} good stars) in {}",
                    rows.len(),
                    out.display()
                );
                println!("  labels: labels.parquet, labels.csv; {:.0} rows/s", rows.len() as f64 / secs.max(1e-9));
            }
        }
    }
    if a.emulator_report {
        print_emulator_report(REPORT_JSON)?;
    }
    if let Some(v) = a.emulate {
        let (teff, logg, feh) = (v[0], v[1], v[2]);
        if !(2800.0..=40000.0).contains(&teff) || !(-0.5..=6.0).contains(&logg) || !(-3.0..=1.0).contains(&feh) {
            bail!(
                "--emulate {teff},{logg},{feh} is outside what MILES covers (Teff 2800–40000 K, log g −0.5–6, [Fe/H] −3–1)"
            );
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

fn print_emulator_report(json: &str) -> Result<()> {
    let r: serde_json::Value = serde_json::from_str(json)?;
    println!(
        "MILES emulator: {} labelled stars, {} fitted, {} held out",
        r["stars"]["labelled"], r["stars"]["training"], r["stars"]["held_out"]
    );
    for (title, key) in [
        ("held-out stars, flux (both normalised to mean 1 over 4000-7000 A)", "held_out_rms_flux"),
        ("held-out stars, lines (continuum-shape differences removed)", "held_out_rms_lines"),
        ("training stars, leave-one-out, flux", "loo_rms_flux"),
    ] {
        println!("\nRMS residual, {title}:");
        let table = r[key].as_object().context("report table")?;
        let regions: Vec<String> = table
            .values()
            .next()
            .and_then(|v| v.as_object())
            .map(|o| o.keys().filter(|k| *k != "n_stars").cloned().collect())
            .unwrap_or_default();
        println!(
            "  {:<20} {:>5}  {}",
            "Teff regime",
            "stars",
            regions.iter().map(|r| format!("{r:>10}")).collect::<String>()
        );
        for (regime, row) in table {
            let cells: String =
                regions.iter().map(|k| format!("{:>10.3}", row[k].as_f64().unwrap_or(f64::NAN))).collect();
            println!("  {regime:<20} {:>5}  {cells}", row["n_stars"]);
        }
    }
    println!("\nPast 7411.6 A (vacuum) spectra come from a parametric model (Planck continuum, Ca II triplet,");
    println!("Paschen, Na I, TiO), not fitted to data: never score label accuracy there. See data/emulator/.");
    Ok(())
}

/// Training allocates and frees the same large activation buffers every step. glibc returns
/// blocks above its mmap threshold to the kernel at once, so each step page-faults them in again
/// (measured: 40 % of encoder training time in the kernel). Keep freed memory for reuse instead.
/// Only for training commands: the streaming stages keep glibc's defaults, which bound their RSS.
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Parses a command line after `starpipe` (a pipeline stage's).
fn parse_command(argv: &[String]) -> std::result::Result<Command, clap::Error> {
    let all = std::iter::once("starpipe").chain(argv.iter().map(String::as_str));
    Cli::try_parse_from(all).map(|c| c.command)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Train(_) | Command::Finetune(_) | Command::TrainEncoder(_) | Command::Embed(_)) {
        keep_freed_memory_for_reuse();
    }
    init_logging(cli.log_format);
    match dispatch(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = one_line(&e);
            match cli.log_format {
                LogFormat::Json => tracing::error!(error = %message, "starpipe stopped"),
                LogFormat::Text => eprintln!("Error: {message}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes in one line, each cause said once: our errors already quote their
/// source, which anyhow's "Caused by:" would repeat.
fn one_line(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message = format!("{message}: {c}");
        }
    }
    message
}

/// The `--out` of a command, and whether it names a directory (else a file, e.g. a catalogue).
fn output_of(command: &Command) -> Option<(&std::path::Path, bool)> {
    Some(match command {
        Command::Ingest(a) => (&a.out, true),
        Command::Mock(a) => (a.out.as_deref()?, true),
        Command::Train(a) => (&a.out, true),
        Command::Finetune(a) => (&a.out, true),
        Command::Evaluate(a) => (&a.out, true),
        Command::Calibrate(a) => (&a.out, true),
        Command::Repeats(a) => (&a.out, true),
        Command::Infer(a) => (&a.out, true),
        Command::Catalog(a) => (&a.out, false),
        Command::TrainEncoder(a) => (&a.out, true),
        Command::Embed(a) => (&a.out, true),
        Command::Report(a) => (&a.out, true),
        Command::Run(_) | Command::Slurm(_) => return None,
    })
}

/// Fails at once, naming the user's path, when `--out` cannot be written, instead of after the
/// work (a training run, then "Operation not permitted" on a temporary name).
fn check_writable(out: &std::path::Path, is_dir: bool) -> Result<()> {
    let dir = if is_dir { out } else { out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(".".as_ref()) };
    let probe = dir.join(format!(".starpipe-write-probe-{}", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::OpenOptions::new().write(true).create_new(true).open(&probe))
        .map(|_| {
            let _ = std::fs::remove_file(&probe);
        })
        .with_context(|| format!("cannot write --out {}", out.display()))
}

fn dispatch(command: Command) -> Result<()> {
    if let Some((out, is_dir)) = output_of(&command) {
        check_writable(out, is_dir)?;
    }
    match command {
        Command::Ingest(a) => ingest(a),
        Command::Mock(a) => mock(a),
        Command::Train(a) => model_cli::train(a),
        Command::Finetune(a) => model_cli::finetune(a),
        Command::Evaluate(a) => model_cli::evaluate(a),
        Command::Calibrate(a) => model_cli::calibrate(a),
        Command::Repeats(a) => model_cli::repeats(a),
        Command::Infer(a) => model_cli::infer(a),
        Command::Catalog(a) => catalog_cli::catalog(a),
        Command::TrainEncoder(a) => encoder_cli::train_encoder(a),
        Command::Embed(a) => encoder_cli::embed(a),
        Command::Report(a) => report_cli::report(a),
        Command::Run(a) => run_cli::run(a),
        Command::Slurm(c) => slurm_cli::slurm(c),
    }
}
