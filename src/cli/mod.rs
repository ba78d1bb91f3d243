//! The `starpipe` command line. Library errors are typed; here they become `anyhow` reports.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use starpipe::pipeline::spec::StageCommand;

pub mod args;
mod catalog;
pub mod console;
mod cpu;
mod encoder;
mod ingest;
mod mock;
mod model;
mod report;
pub mod run;
mod slurm;
mod throughput;

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
pub(crate) enum Command {
    /// Read survey FITS files, select stars, put them on one rest-frame grid, normalise the
    /// continuum, and write normalised-spectra Parquet shards plus an ingest report.
    ///
    /// Output in --out: spectra-<task>-<k>.parquet (schemas/normalized_spectra.toml),
    /// report-<task>-<k>.parquet (schemas/ingest_report.toml), ingest-summary-<task>.json.
    /// Re-running with the same arguments resumes: finished shards are kept, the rest is redone.
    Ingest(ingest::IngestArgs),
    /// Mock surveys from real stars: spectra emulated from the MILES library at labels drawn from a
    /// Milky Way-like mix, rendered through the instrument and written in the survey's real file
    /// format, with a label catalogue.
    ///
    /// Output in --out: the spectrum files (DESI: a healpix tree main/bright/PIXGROUP/PIXNUM/ with
    /// coadd and redrock files), labels.parquet and labels.csv (schemas/mock_*_labels.toml).
    Mock(mock::MockArgs),
    /// Pre-train an MLP on normalised spectra joined to a label table: Teff, log g, [Fe/H] each
    /// as a mean and a calibrated 1σ (Gaussian likelihood).
    ///
    /// Output in --out: model.safetensors and model-card.json (grid window, label scaling and
    /// ranges, σ calibration, data hash, seed, validation metrics).
    Train(model::TrainArgs),
    /// Adapt a pre-trained model to another survey: zeroshot, full, lora or reshead, with
    /// --n-train of its labels (taken outside a fixed test split).
    ///
    /// Output in --out: adapter.safetensors (none for zeroshot) and adapter-card.json, which
    /// names the base model by hash.
    Finetune(model::FinetuneArgs),
    /// Fit an error model, σ = √((k·σ_net)² + floor²) per parameter, on labelled stars the model
    /// never saw (renders of real library stars: `mock --library`), by maximum likelihood with
    /// > 5σ outliers rejected.
    ///
    /// Output in --out: a copy of the model (or --adapter) directory whose card holds the error
    /// model; infer, evaluate and the catalogue then report the calibrated errors.
    Calibrate(model::CalibrateArgs),
    /// Label-free checks of a catalogue: pairs of spectra of one star (repeats; with two
    /// catalogues, the same star in both surveys), their scatter (x₁ − x₂)/√2 against the errors
    /// the catalogue reports, and the median offset between surveys.
    ///
    /// Output in --out: repeats.parquet (schemas/repeats.toml) and repeats.md.
    Repeats(model::RepeatsArgs),
    /// Score a model and its adapters on the held-out test stars: bias, σ, robust σ, MAE,
    /// outliers, uncertainty calibration, bootstrap intervals, per parameter and [Fe/H] regime.
    ///
    /// Output in --out: evaluation.md, evaluation.parquet, evaluation-predictions.parquet.
    Evaluate(model::EvaluateArgs),
    /// Predict Teff, log g, [Fe/H] with errors for every spectrum of the shards, in batches.
    ///
    /// Output in --out: predictions-<shard>.parquet per input shard (schemas/predictions.toml).
    /// Re-running skips shards already predicted with the same model and adapter.
    Infer(model::InferArgs),
    /// Join predictions with the spectra metadata into the catalogue: one row per spectrum and
    /// head with position (_healpix_29), input quality, estimates with errors, provenance, quality
    /// flags and success.
    ///
    /// Output: one Parquet file or a HATS directory (schemas/catalog.toml); units, UCDs and
    /// descriptions in the field metadata and as a VOParquet VOTable.
    Catalog(catalog::CatalogArgs),
    /// Pre-train the transformer encoder by masked-token reconstruction on normalised spectra.
    ///
    /// Output in --out: encoder.safetensors and encoder-card.json.
    TrainEncoder(encoder::TrainEncoderArgs),
    /// Embed spectra with a trained encoder.
    ///
    /// Output in --out: embeddings-<shard>.parquet per input shard (schemas/embeddings.toml).
    Embed(encoder::EmbedArgs),
    /// Plots and one HTML page: predicted vs reference per parameter and strategy, residuals
    /// against [Fe/H], the catalogue's Kiel diagram, S/N and flag distributions, metrics tables,
    /// and the ingest's failed and skipped inputs by reason.
    ///
    /// Output in --out: index.html and *.png.
    Report(report::ReportArgs),
    /// Run a pipeline file: its stages in dependency order, skipping tasks that finished earlier
    /// with the same inputs and parameters (records in WORKDIR/.starpipe/done/). Without a file,
    /// the built-in demo.
    Run(run::RunArgs),
    /// Run a pipeline on a SLURM cluster: job arrays over the shards of the per-file stages,
    /// dependent jobs for the others.
    #[command(subcommand)]
    Slurm(slurm::SlurmCommand),
    /// Network-only inference speed on this machine (inputs in memory, no file I/O): an MLP or the
    /// encoder, f32 or bf16, CPU or GPU. One JSON line per batch size.
    #[command(subcommand)]
    Throughput(throughput::ThroughputCommand),
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
pub(crate) fn parse_command(argv: &[String]) -> std::result::Result<Command, clap::Error> {
    let all = std::iter::once("starpipe").chain(argv.iter().map(String::as_str));
    Cli::try_parse_from(all).map(|c| c.command)
}

pub fn main() -> std::process::ExitCode {
    if let Some(missing) = cpu::missing_features() {
        eprintln!("Error: {}", cpu::refusal(&missing));
        return std::process::ExitCode::FAILURE;
    }
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
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message = format!("{message}: {c}");
        }
    }
    message
}

/// The stage a command runs (its row of `pipeline::spec::STAGES`) and its `--out`; None for the
/// tools that are no stage, and for `mock` without `--out`.
fn stage_of(command: &Command) -> Option<(StageCommand, &std::path::Path)> {
    use StageCommand as S;
    Some(match command {
        Command::Ingest(a) => (S::Ingest, &a.out),
        Command::Mock(a) => (S::Mock, a.out.as_deref()?),
        Command::Train(a) => (S::Train, &a.out),
        Command::Finetune(a) => (S::Finetune, &a.out),
        Command::Evaluate(a) => (S::Evaluate, &a.out),
        Command::Calibrate(a) => (S::Calibrate, &a.out),
        Command::Repeats(a) => (S::Repeats, &a.out),
        Command::Infer(a) => (S::Infer, &a.out),
        Command::Catalog(a) => (S::Catalog, &a.out),
        Command::TrainEncoder(a) => (S::TrainEncoder, &a.out),
        Command::Embed(a) => (S::Embed, &a.out),
        Command::Report(a) => (S::Report, &a.out),
        Command::Run(_) | Command::Slurm(_) | Command::Throughput(_) => return None,
    })
}

/// Fails at once, naming the user's path, when `--out` cannot be written, instead of after the
/// work (a training run, then "Operation not permitted" on a temporary name). It probes the
/// nearest directory that exists and creates none: a command refused later (a wrong `--input`)
/// leaves no empty `--out` behind.
fn check_writable(out: &std::path::Path, is_dir: bool) -> Result<()> {
    let target = if is_dir { out } else { out.parent().unwrap_or("".as_ref()) };
    let existing =
        target.ancestors().find(|p| p.is_dir()).filter(|p| !p.as_os_str().is_empty()).unwrap_or(".".as_ref());
    let probe = existing.join(format!(".starpipe-write-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map(|_| {
            let _ = std::fs::remove_file(&probe);
        })
        .with_context(|| format!("cannot write --out {} ({} is not writable)", out.display(), existing.display()))
}

pub(crate) fn dispatch(command: Command) -> Result<()> {
    if let Some((stage, out)) = stage_of(&command) {
        check_writable(out, !stage.kind().out_may_be_file)?;
    }
    match command {
        Command::Ingest(a) => ingest::ingest(a),
        Command::Mock(a) => mock::mock(a),
        Command::Train(a) => model::train(a),
        Command::Finetune(a) => model::finetune(a),
        Command::Evaluate(a) => model::evaluate(a),
        Command::Calibrate(a) => model::calibrate(a),
        Command::Repeats(a) => model::repeats(a),
        Command::Infer(a) => model::infer(a),
        Command::Catalog(a) => catalog::catalog(a),
        Command::TrainEncoder(a) => encoder::train_encoder(a),
        Command::Embed(a) => encoder::embed(a),
        Command::Report(a) => report::report(a),
        Command::Run(a) => run::run(a),
        Command::Slurm(c) => slurm::slurm(c),
        Command::Throughput(c) => throughput::throughput(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Subcommands that are tools around the stages, not stages (`stage_of` gives None).
    const TOOLS: [&str; 3] = ["run", "slurm", "throughput"];

    /// The subcommands are the stage table's commands and the tools: a command added to one and
    /// not the other fails here, and `stage_of` maps each to its own row.
    #[test]
    fn the_subcommands_are_the_stage_table_and_the_tools() {
        let cli = Cli::command();
        let mut names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).filter(|n| !TOOLS.contains(n)).collect();
        let mut stages: Vec<&str> = starpipe::pipeline::spec::STAGES.iter().map(|k| k.name).collect();
        names.sort();
        stages.sort();
        assert_eq!(names, stages);
    }

    #[test]
    fn a_command_line_maps_to_its_stage_and_its_out() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().command;
        let catalog = parse(&["starpipe", "catalog", "--spectra", "s", "--predictions", "p", "--out", "c.parquet"]);
        let (stage, out) = stage_of(&catalog).unwrap();
        assert_eq!((stage, out), (StageCommand::Catalog, std::path::Path::new("c.parquet")));
        assert!(stage.kind().out_may_be_file);
        let ingest = parse(&["starpipe", "ingest", "--survey", "lamost", "--input", "i", "--out", "o"]);
        let (stage, _) = stage_of(&ingest).unwrap();
        assert_eq!(stage, StageCommand::Ingest);
        assert!(!stage.kind().out_may_be_file);
        assert!(stage_of(&parse(&["starpipe", "mock", "--emulator-report"])).is_none());
    }
}
