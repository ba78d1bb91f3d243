//! `starpipe train-encoder`: self-supervised masked-token pre-training of the encoder on
//! normalised spectra of one or both surveys, and the encoder directory on disk.
//!
//! ```text
//! ENCODER/ encoder.safetensors  encoder-card.json
//! ```

use super::network::{Encoder, EncoderConfig, EncoderPreset, random_mask};
use super::tokens::TokenLayout;
use crate::artifacts::ShardKind;
use crate::artifacts::discover::shard_paths;
use crate::grid::{GridPreset, LogGrid};
use crate::model::data::{RawPixels, for_each_batch};
use crate::model::{ModelError, Result};
use crate::nn::adamw::{AdamW, AdamWParams};
use crate::nn::device::ComputeDevice;
use crate::nn::params::{restore, snapshot, vars};
use crate::nn::weights::{load_tensors, read_json, read_tensors, save_params, write_json};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const ENCODER_FORMAT: &str = "starpipe-encoder/1";
pub const ENCODER_WEIGHTS: &str = "encoder.safetensors";
pub const ENCODER_CARD: &str = "encoder-card.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    pub patience: usize,
    /// Masked runs per spectrum and their length in tokens (SpecCLIP: 6 × 10).
    pub mask_chunks: usize,
    pub mask_chunk_len: usize,
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            weight_decay: 0.1,
            batch_size: 64,
            max_epochs: 30,
            patience: 4,
            mask_chunks: 6,
            mask_chunk_len: 10,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderCard {
    pub format: String,
    pub starpipe_version: String,
    pub window: LogGrid,
    pub tokens: TokenLayout,
    pub architecture: EncoderConfig,
    pub n_parameters: usize,
    pub flops_per_spectrum: f64,
    pub shards: Vec<String>,
    pub n_train: usize,
    pub n_val: usize,
    /// SHA-256 over the spectrum ids and inputs used, in order.
    pub data_sha256: String,
    pub pretraining: PretrainConfig,
    pub epochs_run: usize,
    pub best_epoch: usize,
    /// Validation loss of the initial weights (the baseline the training must beat).
    pub initial_val_loss: f64,
    /// Mean masked-token MSE per epoch (standardised flux units), training and validation.
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
    pub weights_sha256: String,
}

#[derive(Debug, Clone)]
pub struct EncoderTrainOptions {
    pub spectra: Vec<PathBuf>,
    pub out: PathBuf,
    pub window: LogGrid,
    pub preset: EncoderPreset,
    pub pretrain: PretrainConfig,
    /// Use at most this many spectra (the first by id hash), 0 = all.
    pub max_spectra: usize,
    pub val_fraction: f64,
    pub device: ComputeDevice,
    /// Continue from `<out>/checkpoint.json` when it belongs to the same data and settings.
    pub resume: bool,
}

impl EncoderTrainOptions {
    pub fn new(spectra: Vec<PathBuf>, out: PathBuf) -> Self {
        Self {
            spectra,
            out,
            window: LogGrid::preset(GridPreset::Specclip),
            preset: EncoderPreset::Small,
            pretrain: PretrainConfig::default(),
            max_spectra: 0,
            val_fraction: 0.05,
            device: ComputeDevice::Cpu,
            resume: true,
        }
    }
}

fn id_hash(id: &str, seed: u64) -> f64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest([id.as_bytes(), &seed.to_le_bytes()].concat());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64
}

/// Tokens of a block of spectra: [rows, n_tokens, token_dim].
pub fn tokens_tensor(layout: &TokenLayout, features: &[f32], rows: &[usize], dev: &Device) -> Result<Tensor> {
    let (n, t, k) = (layout.npix, layout.n_tokens(), layout.token_dim());
    let mut buf = vec![0f32; rows.len() * t * k];
    for (j, &r) in rows.iter().enumerate() {
        layout.tokenize(&features[r * n..(r + 1) * n], &mut buf[j * t * k..(j + 1) * t * k]);
    }
    Ok(Tensor::from_vec(buf, (rows.len(), t, k), dev)?)
}

pub fn run_train_encoder(opts: &EncoderTrainOptions, progress: &indicatif::ProgressBar) -> Result<EncoderCard> {
    let dev = opts.device.open()?;
    let shards = shard_paths(&opts.spectra, ShardKind::Spectra)?;
    let npix = opts.window.npix;
    let mut ids = Vec::new();
    let mut features = Vec::new();
    for s in &shards {
        for_each_batch(s, &opts.window, 2048, RawPixels::Drop, |b| {
            ids.extend(b.spectrum_id);
            features.extend(b.features);
            Ok(())
        })?;
    }
    let seed = opts.pretrain.seed;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| id_hash(&ids[a], seed).total_cmp(&id_hash(&ids[b], seed)));
    if opts.max_spectra > 0 {
        order.truncate(opts.max_spectra);
    }
    let (val, train): (Vec<usize>, Vec<usize>) =
        order.iter().partition(|&&i| id_hash(&ids[i], seed ^ 0x7A1) < opts.val_fraction);
    if train.len() < 2 || val.is_empty() {
        return Err(ModelError::Invalid(format!(
            "too few spectra to pre-train on ({} train, {} validation)",
            train.len(),
            val.len()
        )));
    }
    let layout = TokenLayout::specclip(npix);
    let config = EncoderConfig::preset(opts.preset, layout.n_tokens(), layout.token_dim());
    let enc = Encoder::init(config, seed, &dev)?;
    tracing::info!(
        n_train = train.len(),
        n_val = val.len(),
        parameters = enc.n_parameters(),
        "pre-training the encoder"
    );
    let p = &opts.pretrain;
    let mut opt = AdamW::new(vars(&enc.params), AdamWParams::new(p.learning_rate, p.weight_decay))?;
    // Validation masks are drawn once, so epochs are compared on the same task.
    let mut val_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5A1);
    let val_masks: Vec<(Vec<usize>, Tensor)> = val
        .chunks(p.batch_size)
        .map(|rows| {
            let m = random_mask(rows.len(), layout.n_tokens(), p.mask_chunks, p.mask_chunk_len, &mut val_rng, &dev)?;
            Ok((rows.to_vec(), m))
        })
        .collect::<Result<_>>()?;
    let val_loss = |enc: &Encoder| -> Result<f64> {
        let mut total = 0.0;
        for (rows, m) in &val_masks {
            let l: f32 = enc.masked_loss(&tokens_tensor(&layout, &features, rows, &dev)?, m)?.to_scalar()?;
            total += l as f64 * rows.len() as f64;
        }
        Ok(total / val.len() as f64)
    };
    let data_sha256 = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for &i in &order {
            h.update(ids[i].as_bytes());
            for v in &features[i * npix..(i + 1) * npix] {
                h.update(v.to_le_bytes());
            }
        }
        format!("{:x}", h.finalize())
    };
    let steps_per_epoch = train.len().div_ceil(p.batch_size);
    let total_steps = (steps_per_epoch * p.max_epochs).max(1);
    progress.set_length(p.max_epochs as u64);
    std::fs::create_dir_all(&opts.out).map_err(|e| ModelError::io(&opts.out, e))?;
    let ckpt = Checkpoint::paths(&opts.out);
    let mut state =
        match opts.resume.then(|| Checkpoint::load(&opts.out, &enc, &mut opt, &data_sha256, p)).transpose()? {
            Some(Some(state)) => {
                tracing::info!(epoch = state.epoch, "resuming from the checkpoint");
                state
            }
            _ => {
                let initial = val_loss(&enc)?;
                Checkpoint {
                    epoch: 0,
                    initial_val_loss: initial,
                    best: initial,
                    best_epoch: 0,
                    since: 0,
                    ..Default::default()
                }
            }
        };
    let mut best_weights = snapshot(&enc.params)?;
    if state.best_epoch > 0 {
        // The best weights so far live in their own file; the current ones are in `enc`.
        best_weights = load_weights(&ckpt.1, &enc, &dev)?;
    }
    progress.set_position(state.epoch as u64);
    for epoch in state.epoch + 1..=p.max_epochs {
        if state.since >= p.patience {
            break;
        }
        // Each epoch's batch order and masks come from (seed, epoch) alone, so a resumed run
        // draws what an uninterrupted one would have.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut shuffled = train.clone();
        shuffled.shuffle(&mut rng);
        let mut sum = 0.0;
        for (b, rows) in shuffled.chunks(p.batch_size).enumerate() {
            // Cosine decay of the learning rate over the whole run (SpecCLIP's schedule).
            let step = (epoch - 1) * steps_per_epoch + b;
            let lr = p.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total_steps as f64).cos());
            opt.set_learning_rate(lr);
            let m = random_mask(rows.len(), layout.n_tokens(), p.mask_chunks, p.mask_chunk_len, &mut rng, &dev)?;
            let loss = enc.masked_loss(&tokens_tensor(&layout, &features, rows, &dev)?, &m)?;
            opt.backward_step(&loss)?;
            sum += loss.to_scalar::<f32>()? as f64 * rows.len() as f64;
        }
        state.train_loss.push(sum / train.len() as f64);
        let v = val_loss(&enc)?;
        state.val_loss.push(v);
        progress.inc(1);
        tracing::info!(epoch, train_loss = sum / train.len() as f64, val_loss = v, "encoder epoch");
        if v < state.best {
            (state.best, state.best_epoch, state.since) = (v, epoch, 0);
            best_weights = snapshot(&enc.params)?;
            save_weights(&ckpt.1, &enc)?;
        } else {
            state.since += 1;
        }
        state.epoch = epoch;
        state.save(&opts.out, &enc, &opt, &data_sha256, p)?;
    }
    restore(&enc.params, &best_weights)?;
    let mut card = EncoderCard {
        format: ENCODER_FORMAT.into(),
        starpipe_version: crate::VERSION.into(),
        window: opts.window,
        tokens: layout,
        architecture: enc.config.clone(),
        n_parameters: enc.n_parameters(),
        flops_per_spectrum: enc.config.flops_per_spectrum(),
        shards: shards.iter().map(|s| s.display().to_string()).collect(),
        n_train: train.len(),
        n_val: val.len(),
        data_sha256,
        pretraining: p.clone(),
        epochs_run: state.train_loss.len(),
        best_epoch: state.best_epoch,
        initial_val_loss: state.initial_val_loss,
        train_loss: state.train_loss.clone(),
        val_loss: state.val_loss.clone(),
        weights_sha256: String::new(),
    };
    save_encoder(&opts.out, &enc, &mut card)?;
    for f in [ckpt.0, ckpt.1, ckpt.2, ckpt.3] {
        let _ = std::fs::remove_file(f);
    }
    Ok(card)
}

/// Training state after an epoch, so a killed job (a SLURM time limit) resumes at the next
/// epoch: `checkpoint.json` (counters, curves, what it was trained on), `checkpoint.safetensors`
/// (current weights), `checkpoint-best.safetensors` and `checkpoint-optimizer.safetensors` (AdamW's
/// moment estimates; the step count is in the JSON). With batch order and masks drawn from
/// (seed, epoch), a resumed run ends bit-identical to an uninterrupted one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    epoch: usize,
    initial_val_loss: f64,
    best: f64,
    best_epoch: usize,
    since: usize,
    train_loss: Vec<f64>,
    val_loss: Vec<f64>,
    data_sha256: String,
    architecture: Option<EncoderConfig>,
    pretraining: Option<PretrainConfig>,
    /// AdamW steps taken (its moments are in checkpoint-optimizer.safetensors).
    #[serde(default)]
    optimizer_steps: usize,
}

impl Checkpoint {
    fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        (
            dir.join("checkpoint.safetensors"),
            dir.join("checkpoint-best.safetensors"),
            dir.join("checkpoint.json"),
            dir.join("checkpoint-optimizer.safetensors"),
        )
    }

    fn save(&self, dir: &Path, enc: &Encoder, opt: &AdamW, data_sha256: &str, p: &PretrainConfig) -> Result<()> {
        let (current, _, json, optimizer) = Self::paths(dir);
        save_weights(&current, enc)?;
        let (steps, moments) = opt.state();
        let mut named = crate::nn::params::Params::new();
        for (name, (m, v)) in enc.params.keys().zip(moments) {
            named.insert(format!("m.{name}"), candle_core::Var::from_tensor(&m)?);
            named.insert(format!("v.{name}"), candle_core::Var::from_tensor(&v)?);
        }
        save_params(&optimizer, &named)?;
        let mut c = self.clone();
        c.optimizer_steps = steps;
        c.data_sha256 = data_sha256.to_string();
        c.architecture = Some(enc.config.clone());
        c.pretraining = Some(p.clone());
        Ok(write_json(&json, &c)?)
    }

    /// The checkpoint of the same data and settings, with its current weights loaded into `enc`;
    /// None when there is none or it belongs to another run.
    fn load(dir: &Path, enc: &Encoder, opt: &mut AdamW, data_sha256: &str, p: &PretrainConfig) -> Result<Option<Self>> {
        let (current, _, json, optimizer) = Self::paths(dir);
        if !json.exists() {
            return Ok(None);
        }
        let c: Self = read_json(&json)?;
        if c.data_sha256 != data_sha256
            || c.architecture.as_ref() != Some(&enc.config)
            || c.pretraining.as_ref() != Some(p)
        {
            tracing::warn!(checkpoint = %json.display(), "checkpoint of other data or settings: starting afresh");
            return Ok(None);
        }
        let w = load_weights(&current, enc, &Device::Cpu)?;
        restore(&enc.params, &w)?;
        // The weights must be put back on the device they train on (restore copies values into
        // the existing variables), and so must the optimiser's moments.
        let dev = enc.params.values().next().map(|v| v.device().clone()).unwrap_or(Device::Cpu);
        if optimizer.exists() {
            let map = read_tensors(&optimizer, &dev)?;
            let moments = enc
                .params
                .keys()
                .map(|k| match (map.get(&format!("m.{k}")), map.get(&format!("v.{k}"))) {
                    (Some(m), Some(v)) => Ok((m.clone(), v.clone())),
                    _ => Err(ModelError::bad(&optimizer, format!("no moments for '{k}'"))),
                })
                .collect::<Result<Vec<_>>>()?;
            opt.restore(c.optimizer_steps, &moments)?;
        } else {
            tracing::warn!(checkpoint = %json.display(), "checkpoint without optimiser state: AdamW restarts");
        }
        Ok(Some(c))
    }
}

fn save_weights(path: &Path, enc: &Encoder) -> Result<()> {
    save_params(path, &enc.params)?;
    Ok(())
}

/// Weights of a file, in `enc`'s parameter order (for `restore`), on `enc`'s device.
fn load_weights(path: &Path, enc: &Encoder, dev: &Device) -> Result<Vec<Tensor>> {
    let map = read_tensors(path, dev)?;
    enc.params
        .keys()
        .map(|k| map.get(k).cloned().ok_or_else(|| ModelError::bad(path, format!("no tensor '{k}'"))))
        .collect()
}

pub fn save_encoder(dir: &Path, enc: &Encoder, card: &mut EncoderCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    card.weights_sha256 = save_params(&dir.join(ENCODER_WEIGHTS), &enc.params)?;
    Ok(write_json(&dir.join(ENCODER_CARD), card)?)
}

pub fn load_encoder(dir: &Path, dev: &Device) -> Result<(Encoder, EncoderCard)> {
    let card_path = dir.join(ENCODER_CARD);
    let card: EncoderCard = read_json(&card_path)?;
    if card.format != ENCODER_FORMAT {
        return Err(ModelError::bad(&card_path, format!("format '{}' is not {ENCODER_FORMAT}", card.format)));
    }
    let path = dir.join(ENCODER_WEIGHTS);
    let tensors = load_tensors(&path, &card.weights_sha256, dev)?;
    let enc = Encoder::from_tensors(card.architecture.clone(), tensors).map_err(|e| ModelError::bad(&path, e))?;
    Ok((enc, card))
}
