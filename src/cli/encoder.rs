//! Command-line front ends of `train-encoder` and `embed`.

use crate::cli::args::{at_least_one, non_negative, positive};
use anyhow::{Result, bail};
use clap::Args;
use starpipe::encoder::embed::{EmbedOptions, run_embed};
use starpipe::encoder::network::EncoderPreset;
use starpipe::encoder::train::{EncoderTrainOptions, run_train_encoder};
use starpipe::grid::LogGrid;
use starpipe::nn::device::ComputeDevice;
use starpipe::nn::precision::Precision;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainEncoderArgs {
    /// Normalised-spectra shards or directories, of one or both surveys.
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    /// Encoder directory to write (encoder.safetensors + encoder-card.json).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Size: small (trains on a CPU in minutes), medium (the largest a 2-core CPU pre-trains on
    /// 20,000 spectra for two epochs within 30 minutes) or specclip (6 layers, 6 heads, 768 wide; GPU).
    #[arg(long, value_enum, default_value_t = EncoderPreset::Small)]
    preset: EncoderPreset,
    /// A crossmatch table (Parquet or CSV with columns obsid and targetid; schemas/crossmatch.toml,
    /// which `mock --overlap` writes): pairs of a LAMOST and a DESI spectrum of one star. Adds the
    /// cross-survey contrastive objective (CLIP's InfoNCE with a learned temperature).
    #[arg(long, value_name = "TABLE")]
    pairs: Option<PathBuf>,
    /// Weight of the contrastive loss (with --pairs).
    #[arg(long, default_value_t = 1.0, requires = "pairs", value_parser = non_negative)]
    contrastive_weight: f64,
    /// Pairs per contrastive batch (default: --batch-size). One batch of pairs goes with each
    /// masked batch, so a larger one shows more pairs per epoch and gives each more negatives.
    #[arg(long, requires = "pairs", value_parser = at_least_one)]
    pair_batch_size: Option<usize>,
    /// Weight of the masked-token reconstruction loss (0 with --pairs: contrastive only).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    masked_weight: f64,
    /// Input window start (Å, vacuum; default: SpecCLIP's 3999–5599 Å).
    #[arg(long, requires = "wave_max")]
    wave_min: Option<f64>,
    /// Input window end (Å, vacuum).
    #[arg(long, requires = "wave_min")]
    wave_max: Option<f64>,
    /// Use at most this many spectra (chosen by id hash; 0 = all).
    #[arg(long, default_value_t = 0)]
    max_spectra: usize,
    /// AdamW learning rate (cosine-decayed to 0 over --max-epochs).
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.1, value_parser = non_negative)]
    weight_decay: f64,
    /// Spectra per optimisation step.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    batch_size: usize,
    /// Upper limit on epochs.
    #[arg(long, default_value_t = 30, value_parser = at_least_one)]
    max_epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    patience: usize,
    /// Arithmetic of training: f32, or bf16 mixed precision for GPUs (f32 master weights cast to
    /// bf16 in each step; layer norm, softmax, losses and AdamW in f32). Slower on a CPU.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Masked runs of tokens per spectrum.
    #[arg(long, default_value_t = 6, value_parser = at_least_one)]
    mask_chunks: usize,
    /// Tokens per masked run.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    mask_chunk_len: usize,
    /// Seed of initialisation, batch order and masks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// auto (a GPU when this binary has the `cuda` feature and one answers, else the CPU), cpu, or
    /// cuda.
    #[arg(long, default_value = "auto", value_parser = crate::cli::args::device)]
    device: ComputeDevice,
    /// Ignore a checkpoint in --out and start over. By default a killed run continues from its
    /// checkpoint when it belongs to the same data and settings, bit-identical to an
    /// uninterrupted run.
    #[arg(long)]
    fresh: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Normalised-spectra shards or directories.
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    /// Encoder directory (from train-encoder).
    #[arg(long)]
    encoder: PathBuf,
    /// Output directory for embeddings-*.parquet (schemas/embeddings.toml).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Spectra per encoder call (64 keeps the small preset's attention buffers reusable; larger
    /// batches measured slower on a 2-core CPU).
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    batch_size: usize,
    /// Process only task i of N (0-based): input shards i, i+N, … of the sorted list. For job arrays.
    #[arg(long, value_name = "i/N", default_value = "0/1")]
    shard: starpipe::artifacts::ShardSpec,
    /// auto (a GPU when this binary has the `cuda` feature and one answers, else the CPU), cpu, or
    /// cuda.
    #[arg(long, default_value = "auto", value_parser = crate::cli::args::device)]
    device: ComputeDevice,
    /// Arithmetic of the encoder: f32 (reproducible bit for bit), or bf16 weights and activations
    /// for GPUs (embeddings written as f32; slower on a CPU).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
}

pub fn train_encoder(a: TrainEncoderArgs) -> Result<()> {
    let mut opts = EncoderTrainOptions::new(a.spectra, a.out.clone());
    if let (Some(lo), Some(hi)) = (a.wave_min, a.wave_max) {
        opts.window = LogGrid::lamost_between(lo, hi)
            .ok_or_else(|| anyhow::anyhow!("--wave-min {lo} --wave-max {hi} selects no grid pixel"))?;
    }
    opts.preset = a.preset;
    opts.max_spectra = a.max_spectra;
    opts.device = a.device;
    opts.resume = !a.fresh;
    opts.pretrain.learning_rate = a.lr;
    opts.pretrain.weight_decay = a.weight_decay;
    opts.pretrain.batch_size = a.batch_size;
    opts.pretrain.max_epochs = a.max_epochs;
    opts.pretrain.patience = a.patience;
    opts.pretrain.mask_chunks = a.mask_chunks;
    opts.pretrain.mask_chunk_len = a.mask_chunk_len;
    opts.pretrain.seed = a.seed;
    opts.pretrain.precision = a.precision;
    opts.pairs = a.pairs;
    opts.pretrain.masked_weight = a.masked_weight;
    opts.pretrain.pair_batch_size = a.pair_batch_size;
    opts.pretrain.contrastive_weight = if opts.pairs.is_some() { a.contrastive_weight } else { 0.0 };
    let bar = crate::cli::console::progress_bar(a.max_epochs as u64, "train-encoder", "epochs");
    let card = run_train_encoder(&opts, &bar)?;
    bar.finish_and_clear();
    println!(
        "train-encoder: {} training + {} validation spectra, {} weights, {:.1} MFLOP per spectrum",
        card.n_train,
        card.n_val,
        card.n_parameters,
        card.flops_per_spectrum / 1e6
    );
    println!(
        "  {} epochs (best {}), validation loss {:.4} (untrained: {:.4})",
        card.epochs_run,
        card.best_epoch,
        card.val_loss.get(card.best_epoch.saturating_sub(1)).copied().unwrap_or(f64::NAN),
        card.initial_val_loss
    );
    if let Some(o) = card.objective.as_ref().filter(|o| o.n_train_pairs > 0) {
        let best = card.best_epoch.saturating_sub(1);
        println!(
            "  contrastive: {} + {} pairs, temperature {:.3}; validation pairs matched across surveys (top-1): {:.1} %",
            o.n_train_pairs,
            o.n_val_pairs,
            o.temperature.unwrap_or(f64::NAN),
            100.0 * o.val_retrieval_top1.get(best).copied().unwrap_or(f64::NAN)
        );
    }
    println!("  encoder: {} (sha256 {})", a.out.display(), &card.weights_sha256[..16]);
    Ok(())
}

pub fn embed(a: EmbedArgs) -> Result<()> {
    let opts = EmbedOptions {
        spectra: a.spectra,
        encoder: a.encoder,
        out: a.out.clone(),
        batch_size: a.batch_size,
        shard: a.shard,
        device: a.device,
        precision: a.precision,
    };
    let bar = crate::cli::console::progress_bar(0, "embed", "shards");
    let start = std::time::Instant::now();
    let s = run_embed(&opts, &bar)?;
    bar.finish_and_clear();
    println!(
        "embed: {} spectra in {} shard(s) ({} kept from an earlier run), {:.0} spectra/s",
        s.spectra,
        s.shards_written,
        s.shards_skipped,
        s.spectra as f64 / start.elapsed().as_secs_f64().max(1e-9)
    );
    for (shard, reason) in &s.failed {
        println!("  FAILED {}: {reason}", shard.display());
    }
    if !s.failed.is_empty() {
        bail!("{} shard(s) could not be embedded (listed above)", s.failed.len());
    }
    println!("  embeddings: {}", a.out.display());
    Ok(())
}
