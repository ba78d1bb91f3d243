//! Command-line front ends of the model stages: `train`, `finetune`, `calibrate`, `evaluate`, `infer`.

use crate::cli::args::{at_least_one, fraction, fraction_below_one, non_negative, positive};
use anyhow::{Result, bail};
use clap::Args;
use starpipe::grid::{GridPreset, LogGrid};
use starpipe::labels::LabelSpec;
use starpipe::model::card::SelectionCuts;
use starpipe::model::finetune::{FinetuneOptions, Strategy, run_finetune};
use starpipe::model::fit::FitConfig;
use starpipe::model::infer::{InferOptions, run_infer};
use starpipe::model::split::TestSplit;
use starpipe::model::train::{TrainOptions, run_train};
use starpipe::nn::device::ComputeDevice;
use starpipe::nn::precision::Precision;
use starpipe::validate::error_model::{CalibrateOptions, run_calibrate};
use starpipe::validate::evaluate::{EvaluateOptions, run_evaluate};
use starpipe::validate::repeats::{RepeatsOptions, StarIds, run_repeats};
use std::path::PathBuf;

/// Where the labels are and which columns to read.
#[derive(Args, Debug)]
pub struct LabelArgs {
    /// Label table (.parquet or .csv). `train` takes several, read as one (e.g. a mock survey's
    /// labels.parquet and library renders'); the other commands take one.
    #[arg(long, required = true, num_args = 1..)]
    labels: Vec<PathBuf>,
    /// Key column joined to the spectra's source_id (default: obsid for train, targetid otherwise;
    /// names match case-insensitively).
    #[arg(long)]
    label_key: Option<String>,
    /// Teff, log g, [Fe/H] columns; <name>_err columns are read as their errors when present.
    #[arg(long, default_value = "teff,logg,feh")]
    label_columns: String,
    /// Use only spectra with at least this median S/N per pixel on the grid (snr_grid).
    #[arg(long, default_value_t = 0.0)]
    min_snr: f64,
    /// Use only stars whose catalogue Teff error is at most this (K).
    #[arg(long)]
    max_teff_err: Option<f64>,
    /// Use only stars whose catalogue log g error is at most this (dex).
    #[arg(long)]
    max_logg_err: Option<f64>,
    /// Use only stars whose catalogue [Fe/H] error is at most this (dex).
    #[arg(long)]
    max_feh_err: Option<f64>,
}

impl LabelArgs {
    /// The one label table of a command that takes one.
    fn table(&self) -> Result<PathBuf> {
        match self.labels.as_slice() {
            [one] => Ok(one.clone()),
            _ => {
                bail!("--labels takes one table here ({} given); only `train` reads several as one", self.labels.len())
            }
        }
    }

    fn spec(&self, default_key: &str) -> Result<LabelSpec> {
        Ok(LabelSpec::new(self.label_key.as_deref().unwrap_or(default_key)).with_columns(&self.label_columns)?)
    }

    fn cuts(&self) -> SelectionCuts {
        SelectionCuts {
            min_snr: self.min_snr,
            max_label_error: [self.max_teff_err, self.max_logg_err, self.max_feh_err],
        }
    }
}

/// Optimiser settings; unset values take the stage's defaults.
#[derive(Args, Debug)]
pub struct FitArgs {
    /// AdamW learning rate (default: train 1e-3; finetune full 1e-4, lora/reshead 1e-3).
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long, value_parser = non_negative)]
    weight_decay: Option<f64>,
    /// Spectra per optimisation step (default: train 512, finetune 128).
    #[arg(long, value_parser = at_least_one)]
    batch_size: Option<usize>,
    /// Upper limit on epochs.
    #[arg(long, value_parser = at_least_one)]
    max_epochs: Option<usize>,
    /// Stop after this many epochs without a better validation loss (default: train 10, finetune 20).
    #[arg(long, value_parser = at_least_one)]
    patience: Option<usize>,
    /// Seed of weight initialisation, batch order, dropout and augmentation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Augment pixel inputs in every batch: RV residual, resolution jitter, smooth continuum
    /// distortion, re-drawn noise, masked segments (model::augment; seeded). Pixel models only.
    #[arg(long)]
    augment: bool,
    /// Label-balanced sampling in [Fe/H]: stars of sparse [Fe/H] bins are drawn up to 8 times per
    /// epoch, against the pull of metal-poor estimates toward the metal-rich mean.
    #[arg(long)]
    balance_feh: bool,
    /// Arithmetic of training: f32, or bf16 mixed precision for GPUs (f32 master weights cast to
    /// bf16 in each step; layer norm, loss and AdamW in f32). Slower on a CPU.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
}

impl FitArgs {
    fn apply(&self, mut cfg: FitConfig) -> Result<FitConfig> {
        cfg.learning_rate = self.lr.unwrap_or(cfg.learning_rate);
        cfg.weight_decay = self.weight_decay.unwrap_or(cfg.weight_decay);
        cfg.batch_size = self.batch_size.unwrap_or(cfg.batch_size);
        cfg.max_epochs = self.max_epochs.unwrap_or(cfg.max_epochs);
        cfg.patience = self.patience.unwrap_or(cfg.patience);
        cfg.seed = self.seed;
        cfg.augment = self.augment.then(starpipe::model::augment::Augmentation::default);
        cfg.balance_feh = self.balance_feh;
        cfg.precision = self.precision;
        if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) || cfg.weight_decay < 0.0 {
            bail!("--lr must be positive and --weight-decay non-negative");
        }
        Ok(cfg)
    }
}

/// How computation runs.
#[derive(Args, Debug)]
pub struct ComputeArgs {
    /// auto (a GPU when this binary has the `cuda` feature and one answers, else the CPU), cpu, or
    /// cuda.
    #[arg(long, default_value = "auto", value_parser = crate::cli::args::device)]
    device: ComputeDevice,
    /// CPU threads (default: all cores).
    #[arg(long, value_parser = at_least_one)]
    threads: Option<usize>,
}

impl ComputeArgs {
    fn setup(&self) -> Result<ComputeDevice> {
        if let Some(n) = self.threads {
            rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
        }
        Ok(self.device)
    }
}

/// Target-survey test split, shared by finetune and evaluate.
#[derive(Args, Debug)]
pub struct SplitArgs {
    /// Fraction of labelled target stars reserved for evaluation (chosen by key hash); with
    /// `evaluate` and no adapter, 1 scores every star.
    #[arg(long, default_value_t = TestSplit::default().test_fraction, value_parser = fraction)]
    test_fraction: f64,
    /// Seed of the test-split hash.
    #[arg(long, default_value_t = TestSplit::default().seed)]
    split_seed: u64,
}

impl SplitArgs {
    fn split(&self) -> Result<TestSplit> {
        // 1 makes every star a test star: scoring a model on a survey it never adapted to.
        Ok(TestSplit { seed: self.split_seed, test_fraction: self.test_fraction })
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Normalised-spectra shards (spectra-*.parquet) or embedding shards (embeddings-*.parquet, from
    /// `starpipe embed`), or directories of them: the model reads pixels or embeddings accordingly.
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    #[command(flatten)]
    labels: LabelArgs,
    /// Model directory to write (model.safetensors + model-card.json).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Input window start (Å, vacuum; default: SpecCLIP's window, 3999–5599 Å).
    #[arg(long, requires = "wave_max")]
    wave_min: Option<f64>,
    /// Input window end (Å, vacuum).
    #[arg(long, requires = "wave_min")]
    wave_max: Option<f64>,
    /// Hidden layer widths (default: 512,256,64 on pixels; 256,64 on embeddings, SpecCLIP's head).
    #[arg(long, value_delimiter = ',', value_parser = at_least_one)]
    hidden: Option<Vec<usize>>,
    /// Dropout probability after each hidden layer.
    #[arg(long, default_value_t = 0.1, value_parser = fraction_below_one)]
    dropout: f64,
    /// Fraction of stars held out for early stopping and σ calibration.
    #[arg(long, default_value_t = 0.1, value_parser = fraction_below_one)]
    val_fraction: f64,
    #[command(flatten)]
    fit: FitArgs,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Target-survey normalised-spectra shards or directories.
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    #[command(flatten)]
    labels: LabelArgs,
    /// Pre-trained model directory.
    #[arg(long)]
    model: PathBuf,
    /// Adapter directory to write (adapter.safetensors + adapter-card.json).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// zeroshot (the pre-trained model as it is), full (every weight fine-tuned), lora (low-rank
    /// updates of the hidden layers) or reshead (a small residual head on the frozen model).
    #[arg(long, value_enum)]
    strategy: Strategy,
    /// Target-survey labelled stars used (training + validation), taken outside the test split (0 with
    /// `--strategy zeroshot`: no target stars at all).
    #[arg(long, default_value_t = 500)]
    n_train: usize,
    /// Fraction of those used for early stopping and σ calibration.
    #[arg(long, default_value_t = 0.2, value_parser = fraction_below_one)]
    val_fraction: f64,
    #[command(flatten)]
    split: SplitArgs,
    /// LoRA rank r.
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    lora_rank: usize,
    /// LoRA scale α (updates are scaled by α/r).
    #[arg(long, default_value_t = 16.0, value_parser = positive)]
    lora_alpha: f64,
    /// Layers LoRA adapts (hidden.0, hidden.1, …, output; default: every hidden layer).
    #[arg(long, value_delimiter = ',')]
    lora_layers: Vec<String>,
    /// Hidden width of the residual head.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    reshead_hidden: usize,
    #[command(flatten)]
    fit: FitArgs,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Normalised-spectra shards or directories of the labelled survey.
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    #[command(flatten)]
    labels: LabelArgs,
    /// Model directory; scored unchanged as `zeroshot`.
    #[arg(long)]
    model: PathBuf,
    /// Adapter directories to score as well (repeatable).
    #[arg(long, num_args = 1..)]
    adapter: Vec<PathBuf>,
    /// Output directory: evaluation.md, evaluation.parquet, evaluation-predictions.parquet.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Test split when no adapter records one.
    #[command(flatten)]
    split: SplitArgs,
    /// Bootstrap resamples for the 68 % intervals.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    bootstrap: usize,
    /// Also score a model on embeddings (with --embeddings and --embedding-adapter), and the
    /// hybrids of the two heads per strategy (inverse-variance mean; regime switch at [Fe/H] = −1;
    /// both: pixels unless they put [Fe/H] above −1 by 2σ, the inverse-variance mean there).
    #[arg(long, requires = "embeddings")]
    embedding_model: Option<PathBuf>,
    /// Embedding shards (from `starpipe embed`) of the same spectra.
    #[arg(long, num_args = 1.., requires = "embedding_model")]
    embeddings: Vec<PathBuf>,
    /// Adapters of the embedding model (repeatable).
    #[arg(long, num_args = 1.., requires = "embedding_model")]
    embedding_adapter: Vec<PathBuf>,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Normalised-spectra shards or directories of labelled stars the model never saw (meant for
    /// renders of real library stars its emulator was not fitted on: `mock --library`).
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    #[command(flatten)]
    labels: LabelArgs,
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Calibrate this adapter's errors instead of the model's (e.g. the zero-shot adapter on
    /// another survey's renders).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Output directory: a copy of the model (or adapter) directory whose card holds the error model.
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct RepeatsArgs {
    /// Catalogue Parquet file or HATS directory (from `starpipe catalog`); give two to compare
    /// surveys as well.
    #[arg(long, required = true, num_args = 1..=2)]
    catalog: Vec<PathBuf>,
    /// Star-id table per catalogue, in the same order (.parquet or .csv): its key column is the
    /// catalogue's source_id, --star-id-column the id shared by one star's spectra (Gaia
    /// source_id, a library id). Without it a star is the catalogue's star_id (DESI TARGETID,
    /// LAMOST designation).
    #[arg(long, num_args = 1..=2, requires = "star_id_column")]
    star_ids: Vec<PathBuf>,
    /// The column of the star-id tables holding the star id.
    #[arg(long)]
    star_id_column: Option<String>,
    /// The column of the star-id tables holding the catalogue's source_id (default: source_id,
    /// else obsid, else targetid).
    #[arg(long)]
    star_id_key: Option<String>,
    /// Output directory: repeats.parquet (schemas/repeats.toml) and repeats.md.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

pub fn repeats(a: RepeatsArgs) -> Result<()> {
    let star_ids = a
        .star_ids
        .iter()
        .map(|table| StarIds {
            table: table.clone(),
            key: a.star_id_key.clone(),
            id_column: a.star_id_column.clone().expect("clap requires --star-id-column"),
        })
        .collect();
    let opts = RepeatsOptions { catalogs: a.catalog, star_ids, out: a.out.clone() };
    let stats = run_repeats(&opts)?;
    print!("{}", starpipe::validate::repeats::markdown(&stats));
    if let Some(note) = starpipe::validate::repeats::cross_survey_note(&opts, &stats) {
        println!("note: {note}");
    }
    use starpipe::artifacts::layout::{REPEATS_MARKDOWN, REPEATS_TABLE};
    println!("  tables: {} and {REPEATS_MARKDOWN} beside it", a.out.join(REPEATS_TABLE).display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// Normalised-spectra shards or directories.
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Adapter directory (from finetune) applied on top of the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Output directory for predictions-*.parquet (schemas/predictions.toml).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Spectra per read block and network call.
    #[arg(long, default_value_t = 1024, value_parser = at_least_one)]
    batch_size: usize,
    /// Process only task i of N (0-based): input shards i, i+N, … of the sorted list. For job arrays.
    #[arg(long, value_name = "i/N", default_value = "0/1")]
    shard: starpipe::artifacts::ShardSpec,
    /// Arithmetic of the network: f32 (reproducible bit for bit), or bf16 weights and activations
    /// for GPUs (outputs within about 1 % of f32; slower on a CPU).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    #[command(flatten)]
    compute: ComputeArgs,
}

pub fn train(a: TrainArgs) -> Result<()> {
    let device = a.compute.setup()?;
    let mut opts = TrainOptions::new(a.spectra, a.labels.labels.clone(), a.out.clone());
    opts.label_spec = a.labels.spec("obsid")?;
    opts.selection = a.labels.cuts();
    opts.window = match (a.wave_min, a.wave_max) {
        (Some(lo), Some(hi)) => LogGrid::lamost_between(lo, hi)
            .ok_or_else(|| anyhow::anyhow!("--wave-min {lo} --wave-max {hi} selects no grid pixel"))?,
        _ => LogGrid::preset(GridPreset::Specclip),
    };
    opts.hidden = a.hidden;
    opts.dropout = a.dropout as f32;
    opts.val_fraction = a.val_fraction;
    opts.fit = a.fit.apply(FitConfig::pretraining())?;
    opts.device = device;
    let bar = crate::cli::console::progress_bar(opts.fit.max_epochs as u64, "train", "epochs");
    let s = run_train(&opts, &bar)?;
    bar.finish_and_clear();
    let c = &s.card;
    println!(
        "train: {} training + {} validation spectra ({} read, {} without label, {} below --min-snr, {} with large label errors)",
        c.training.n_train,
        c.training.n_val,
        s.counts.spectra_read,
        s.counts.without_label,
        s.counts.below_min_snr,
        s.counts.label_error_too_large
    );
    println!(
        "  {} epochs (best {}), {} weights, sha256 {}",
        c.training.report.epochs_run,
        c.training.report.best_epoch,
        c.n_parameters,
        &c.weights_sha256[..16]
    );
    print_validation(&c.validation);
    println!("  model: {}", a.out.display());
    Ok(())
}

fn print_validation(v: &[starpipe::model::card::ParameterMetrics]) {
    if v.iter().all(|m| m.metrics.n == 0) {
        println!("  no validation stars (nothing to score or calibrate on)");
        return;
    }
    for m in v {
        // Coverage on the stars that set the σ factor is 0.68 by construction: show the held-out one.
        let coverage = match m.within_1sigma_held_out {
            Some(c) => format!("|Δ|<σ {c:.2} on stars that did not set σ"),
            None => "|Δ|<σ not measured (too few stars to hold some out)".to_string(),
        };
        println!(
            "  validation {:<5} robust σ {:>9.4} {:<14} bias {:>9.4}  {coverage}  (N = {})",
            m.parameter, m.metrics.robust_sigma, m.unit, m.metrics.bias, m.metrics.n
        );
    }
}

pub fn finetune(a: FinetuneArgs) -> Result<()> {
    let device = a.compute.setup()?;
    let mut opts = FinetuneOptions::new(a.spectra, a.labels.table()?, a.model, a.out.clone(), a.strategy);
    opts.label_spec = a.labels.spec("targetid")?;
    opts.selection = a.labels.cuts();
    opts.n_train = a.n_train;
    opts.val_fraction = a.val_fraction;
    opts.split = a.split.split()?;
    opts.lora_rank = a.lora_rank;
    opts.lora_alpha = a.lora_alpha;
    opts.lora_layers = a.lora_layers;
    opts.reshead_hidden = a.reshead_hidden;
    opts.fit = a.fit.apply(opts.fit.clone())?;
    opts.device = device;
    let bar = crate::cli::console::progress_bar(opts.fit.max_epochs as u64, "finetune", "epochs");
    let s = run_finetune(&opts, &bar)?;
    bar.finish_and_clear();
    let c = &s.card;
    let t = c.training.as_ref().expect("finetune always records its data");
    println!(
        "finetune {}: {} training + {} validation stars, {} trainable weights, {} epochs (best {})",
        c.kind, t.n_train, t.n_val, c.n_trainable_parameters, t.report.epochs_run, t.report.best_epoch
    );
    print_validation(&c.validation);
    println!("  adapter: {} (base model {})", a.out.display(), &c.base_model_sha256[..16]);
    Ok(())
}

pub fn evaluate(a: EvaluateArgs) -> Result<()> {
    let device = a.compute.setup()?;
    let opts = EvaluateOptions {
        spectra: a.spectra,
        labels: a.labels.table()?,
        label_spec: a.labels.spec("targetid")?,
        model: a.model,
        adapters: a.adapter,
        split: a.split.split()?,
        embedding: a.embedding_model.map(|model| starpipe::validate::evaluate::EmbeddingSide {
            spectra: a.embeddings,
            model,
            adapters: a.embedding_adapter,
        }),
        selection: a.labels.cuts(),
        out: a.out,
        n_boot: a.bootstrap,
        device,
    };
    let s = run_evaluate(&opts)?;
    println!("evaluate: {} test spectra, {} metric rows", s.n_test, s.rows.len());
    for r in s.rows.iter().filter(|r| r.regime == "all") {
        println!(
            "  {:<13} {:<18} {:<5} robust σ {:>9.4}  bias {:>9.4}  |Δ|<σ {:.2}",
            r.input,
            r.strategy,
            r.parameter.name(),
            r.metrics.robust_sigma,
            r.metrics.bias,
            r.metrics.within_1sigma
        );
    }
    println!("  coverage at 1σ per S/N bin (Teff, log g, [Fe/H]; 0.683 when the errors are right):");
    for (head, bins) in &s.snr_coverage {
        let cells: Vec<String> = bins
            .iter()
            .filter(|b| b.n > 0)
            .map(|b| {
                let w = b.within_1sigma;
                format!("S/N {}–{} (n={}) {:.2}/{:.2}/{:.2}", b.snr_min, b.snr_max, b.n, w[0], w[1], w[2])
            })
            .collect();
        println!("    {head}: {}", cells.join("; "));
    }
    if let Some(e) = s.encoder.as_ref().filter(|e| !e.is_empty()) {
        println!("  embedding heads: {e}");
    }
    println!("  tables: {} and {}", s.markdown.display(), s.parquet.display());
    Ok(())
}

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    let device = a.compute.setup()?;
    let opts = CalibrateOptions {
        model: a.model,
        adapter: a.adapter,
        spectra: a.spectra,
        labels: a.labels.table()?,
        label_spec: a.labels.spec("obsid")?,
        selection: a.labels.cuts(),
        out: a.out.clone(),
        device,
    };
    let f = run_calibrate(&opts)?;
    println!(
        "calibrate: error model σ = √((k·σ_net)² + floor² + (snr_term/snr)²) fitted on {} stars",
        f.n_used[0] + f.n_rejected[0]
    );
    for (p, param) in starpipe::model::PARAMETERS.iter().enumerate() {
        println!(
            "  {:<5} k {:>6.3}  floor {:>8.4}  snr_term {:>8.3} {:<15} |Δ|<σ {:.2} → {:.2}, |Δ|<2σ {:.2}  ({} rejected as > 5σ)",
            param.name(),
            f.model.scale[p],
            f.model.floor[p],
            f.model.snr_term[p],
            param.unit(),
            f.coverage_1sigma_before[p],
            f.coverage_1sigma[p],
            f.coverage_2sigma[p],
            f.n_rejected[p]
        );
    }
    // On the stars it was fitted on, so 0.68 overall by construction; the bins say where it holds.
    println!("  |Δ|<σ per S/N bin on these stars (Teff / log g / [Fe/H]):");
    for b in f.coverage_by_snr.iter().filter(|b| b.n > 0) {
        let w = b.within_1sigma;
        println!("    S/N {:>3}–{:<3} n {:>5}  {:.2} / {:.2} / {:.2}", b.snr_min, b.snr_max, b.n, w[0], w[1], w[2]);
    }
    println!("  calibrated copy: {}", a.out.display());
    Ok(())
}

pub fn infer(a: InferArgs) -> Result<()> {
    let device = a.compute.setup()?;
    let opts = InferOptions {
        spectra: a.spectra,
        model: a.model,
        adapter: a.adapter,
        out: a.out.clone(),
        batch_size: a.batch_size,
        shard: a.shard,
        device,
        precision: a.precision,
    };
    let bar = crate::cli::console::progress_bar(0, "infer", "shards");
    let start = std::time::Instant::now();
    let s = run_infer(&opts, &bar)?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "infer: {} spectra in {} shard(s) ({} kept from an earlier run), {:.0} spectra/s",
        s.spectra,
        s.shards_written,
        s.shards_skipped,
        s.spectra as f64 / secs.max(1e-9)
    );
    println!("  predictions: {}", a.out.display());
    for (shard, reason) in &s.failed {
        println!("  FAILED {}: {reason}", shard.display());
    }
    if !s.failed.is_empty() {
        bail!("{} shard(s) could not be predicted (listed above); re-run after fixing them", s.failed.len());
    }
    Ok(())
}
