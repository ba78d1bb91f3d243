//! `starpipe ingest`: flags → `IngestOptions` → `run_ingest`, then the summary.

use super::args::{at_least_one, fraction, positive};
use super::console::progress_bar;
use anyhow::{Context, Result, bail};
use clap::Args;
use starpipe::artifacts::ShardSpec;
use starpipe::grid::{GridPreset, LogGrid};
use starpipe::ingest::desi::DesiOptions;
use starpipe::ingest::record::Status;
use starpipe::ingest::select::SelectionRules;
use starpipe::ingest::{IngestOptions, IngestSummary, Survey, run_ingest};
use starpipe::preprocess::{ContinuumConfig, PreprocessConfig};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Which survey's files to read.
    #[arg(long, value_enum)]
    pub survey: Survey,
    /// A directory (walked recursively; LAMOST: *.fits, *.fits.gz; DESI: coadd-*.fits with
    /// redrock-*.fits beside them) or a manifest file with one path per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Output directory for shards and report (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Process only task i of N (0-based): inputs i, i+N, i+2N, … of the ordered list. For job arrays.
    #[arg(long, value_name = "i/N", default_value = "0/1")]
    pub shard: ShardSpec,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "K", value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// Spectra per output shard.
    #[arg(long, default_value_t = 50_000, value_parser = at_least_one)]
    pub shard_size: usize,
    /// Rows per Parquet row group (bounds writer memory: ~31 kB per row on the full LAMOST grid).
    #[arg(long, default_value_t = 4096, value_parser = at_least_one)]
    pub row_group_rows: usize,
    /// Output wavelength window on the LAMOST log grid: lamost = 3700–9099 Å (3909 px),
    /// specclip = 3999–5599 Å (1462 px).
    #[arg(long, value_enum, default_value_t = GridPreset::Lamost)]
    pub grid: GridPreset,
    /// Custom window start (Å, vacuum): the grid keeps LAMOST pixels with centres in [min, max].
    #[arg(long, requires = "wave_max")]
    pub wave_min: Option<f64>,
    /// Custom window end (Å, vacuum).
    #[arg(long, requires = "wave_min")]
    pub wave_max: Option<f64>,
    /// Keep spectra in the observed frame (no Doppler correction).
    #[arg(long)]
    pub no_rest_frame: bool,
    /// Convolve DESI arms to this resolving power before resampling (bare flag: R = 1800, LAMOST's).
    #[arg(long, value_name = "R", num_args = 0..=1, default_missing_value = "1800", value_parser = positive)]
    pub degrade_to_r: Option<f64>,
    /// Chebyshev degree of the continuum fit per segment (1–6).
    #[arg(long, default_value_t = ContinuumConfig::default().degree as u16, value_parser = clap::value_parser!(u16).range(1..=6))]
    pub continuum_degree: u16,
    /// Skip spectra with a larger fraction of masked grid pixels.
    #[arg(long, default_value_t = 0.5, value_parser = fraction)]
    pub max_masked_fraction: f64,
    /// DESI: COADD_FIBERSTATUS bits that do not disqualify a fibre (comma list; 3 = RESTRICTED).
    #[arg(long, value_delimiter = ',', default_value = "3", value_parser = clap::value_parser!(u32).range(0..=31))]
    pub allow_fiberstatus_bits: Vec<u32>,
    /// DESI: largest |c·z| in km/s accepted for a star.
    #[arg(long, default_value_t = 1500.0, value_parser = positive)]
    pub max_abs_rv: f64,
    /// Exit with an error (after writing everything) when more than this fraction of the task's
    /// input files failed: a systemic problem (wrong survey, damaged transfer) rather than a few
    /// bad files. The failed files are listed in the report either way.
    #[arg(long, value_name = "F", value_parser = fraction)]
    pub max_failed_fraction: Option<f64>,
    /// Do not draw a progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

pub fn ingest(a: IngestArgs) -> Result<()> {
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
    if let Some(why) = summary.failure(a.max_failed_fraction) {
        bail!(
            "{why}; the reasons are in {}",
            a.out.join(starpipe::artifacts::naming::report_parts_glob(&a.shard.tag())).display()
        );
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
