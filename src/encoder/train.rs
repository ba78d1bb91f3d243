//! `starpipe train-encoder`: self-supervised masked-token pre-training of the encoder on
//! normalised spectra of one or both surveys, and the encoder directory on disk.
//!
//! ```text
//! ENCODER/ encoder.safetensors  encoder-card.json
//! ```

use super::network::{
    Encoder, EncoderConfig, EncoderPreset, INITIAL_LOGIT_SCALE, MAX_LOGIT_SCALE, contrastive_loss, random_mask,
    retrieval_top1,
};
use super::tokens::TokenLayout;
use super::{EncoderError, Result};
use crate::artifacts::ShardKind;
use crate::artifacts::discover::shard_paths;
use crate::grid::{GridPreset, LogGrid};
use crate::nn::adamw::{AdamW, AdamWParams};
use crate::nn::device::ComputeDevice;
use crate::nn::params::{Params, restore, snapshot, vars};
use crate::nn::precision::Precision;
use crate::nn::weights::{load_tensors, read_json, read_tensors, save_params, write_json};
use crate::shards::read::{RawPixels, for_each_batch};
use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const ENCODER_FORMAT: &str = "starpipe-encoder/1";
use crate::artifacts::layout;
pub use crate::artifacts::layout::{ENCODER_CARD, ENCODER_WEIGHTS};

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
    /// Weight of the masked-token reconstruction loss (0: contrastive only).
    #[serde(default = "one")]
    pub masked_weight: f64,
    /// Weight of the cross-survey contrastive loss (needs pairs; 0 without).
    #[serde(default)]
    pub contrastive_weight: f64,
    /// Arithmetic of the training steps: bf16 is mixed precision (f32 master weights cast in each
    /// step's graph; layer norm, softmax, losses and AdamW in f32). Validation runs in f32.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Pairs per contrastive batch (absent: `batch_size`). Each step draws one batch of pairs
    /// beside its masked batch, so this sets how many pairs an epoch sees and how many negatives
    /// each pair has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_batch_size: Option<usize>,
}

impl PretrainConfig {
    /// Pairs per contrastive batch.
    pub fn pair_batch(&self) -> usize {
        self.pair_batch_size.unwrap_or(self.batch_size).max(1)
    }
}

fn one() -> f64 {
    1.0
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
            masked_weight: 1.0,
            contrastive_weight: 0.0,
            precision: Precision::F32,
            pair_batch_size: None,
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
    /// The objective: masked-token reconstruction, and the cross-survey contrastive term when the
    /// encoder trained on pairs (absent in cards of encoders trained before it existed).
    #[serde(default)]
    pub objective: Option<Objective>,
    pub weights_sha256: String,
}

/// The smallest encoder whose embedding head earned its place on the mocks (experiments/README.md,
/// "contrastive-experiment.sh"): the `medium` width, cross-survey pairs, this many epochs.
const RECOMMENDED: (usize, usize) = (96, 8);

impl EncoderCard {
    /// Cross-survey pairs were part of the objective.
    pub fn is_contrastive(&self) -> bool {
        self.objective.as_ref().is_some_and(|o| o.contrastive_weight > 0.0 && o.n_train_pairs > 0)
    }

    /// At least the recommended encoder: width, pairs and epochs (see [`RECOMMENDED`]).
    pub fn is_recommended(&self) -> bool {
        self.architecture.d_model >= RECOMMENDED.0 && self.is_contrastive() && self.epochs_run >= RECOMMENDED.1
    }

    /// One line for the people reading an evaluation: what the encoder is, and whether its
    /// embedding head can be expected to do what the measured results say.
    pub fn describe(&self) -> String {
        let a = &self.architecture;
        let objective = if self.is_contrastive() {
            "masked tokens + cross-survey pairs (contrastive)"
        } else {
            "masked tokens only (no cross-survey pairs)"
        };
        let verdict = if self.is_recommended() {
            "at least the recommended encoder".to_string()
        } else {
            format!(
                "not the recommended encoder (width ≥ {}, cross-survey pairs, ≥ {} epochs), so its embedding head is \
                 expected to be weaker than the measured results (experiments/README.md, contrastive-experiment.sh)",
                RECOMMENDED.0, RECOMMENDED.1
            )
        };
        format!(
            "encoder {}: width {}, {} layers, {} weights, trained on {} spectra for {} epochs, {objective}; {verdict}",
            &self.weights_sha256[..self.weights_sha256.len().min(12)],
            a.d_model,
            a.n_layers,
            self.n_parameters,
            self.n_train + self.n_val,
            self.epochs_run,
        )
    }
}

/// What an encoder was trained to do, and how well it aligns the surveys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub masked_weight: f64,
    pub contrastive_weight: f64,
    /// The crossmatch table the pairs came from, and the pairs with both spectra loaded.
    pub pairs: Option<String>,
    pub n_train_pairs: usize,
    pub n_val_pairs: usize,
    /// The learned temperature of the contrastive loss at the best epoch (1 / exp(logit scale)).
    pub temperature: Option<f64>,
    /// Per epoch on the validation pairs: the contrastive loss, and the fraction whose partner in
    /// the other survey is the nearest of all validation partners (cosine).
    pub val_contrastive_loss: Vec<f64>,
    pub val_retrieval_top1: Vec<f64>,
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
    /// A crossmatch table (columns `obsid`, `targetid`: schemas/crossmatch.toml): pairs of a
    /// LAMOST and a DESI spectrum of one star for the contrastive objective.
    pub pairs: Option<PathBuf>,
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
            pairs: None,
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

/// Pairs of loaded spectra (LAMOST row, DESI row) of one star each, from a crossmatch table.
struct Pairs {
    file: PathBuf,
    train: Vec<(usize, usize)>,
    val: Vec<(usize, usize)>,
}

/// The (obsid, TARGETID) pairs of a crossmatch table, read before any spectrum so a bad table
/// fails at once.
fn read_crossmatch(path: &Path) -> Result<Vec<(i64, i64)>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Int64Type};
    let mut pairs = Vec::new();
    for b in &crate::labels::read_table(path)? {
        let column = |name: &str| -> Result<Vec<i64>> {
            let (i, _) = b.schema().column_with_name(name).ok_or_else(|| {
                EncoderError::bad(path, format!("no column '{name}' (a crossmatch needs obsid and targetid)"))
            })?;
            let c = arrow::compute::cast(b.column(i), &DataType::Int64)
                .map_err(|e| EncoderError::bad(path, format!("column '{name}': {e}")))?;
            Ok(c.as_primitive::<Int64Type>().iter().map(|v| v.unwrap_or(i64::MIN)).collect())
        };
        pairs.extend(column("obsid")?.into_iter().zip(column("targetid")?));
    }
    Ok(pairs)
}

/// Keeps the crossmatch pairs whose two spectra are loaded (the first spectrum of each obsid and
/// TARGETID); validation pairs are chosen by a hash of the obsid.
fn match_pairs(
    path: &Path,
    crossmatch: &[(i64, i64)],
    surveys: &[String],
    source_ids: &[i64],
    seed: u64,
    val_fraction: f64,
) -> Result<Pairs> {
    let mut row_of = std::collections::HashMap::new();
    for (i, (survey, id)) in surveys.iter().zip(source_ids).enumerate() {
        row_of.entry((survey.as_str() == "desi", *id)).or_insert(i);
    }
    let listed = crossmatch.len();
    let mut pairs: Vec<(i64, usize, usize)> = crossmatch
        .iter()
        .filter_map(|&(o, t)| Some((o, *row_of.get(&(false, o))?, *row_of.get(&(true, t))?)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    tracing::info!(listed, usable = pairs.len(), pairs = %path.display(), "crossmatch pairs with both spectra loaded");
    let (val, train): (Vec<_>, Vec<_>) =
        pairs.iter().partition(|(o, _, _)| id_hash(&o.to_string(), seed ^ 0x7A1) < val_fraction);
    if train.len() < 2 || val.len() < 2 {
        return Err(EncoderError::bad(
            path,
            format!(
                "{} of its {listed} pairs have both spectra in --spectra ({} train, {} validation): the \
                 contrastive objective needs at least 2 of each",
                pairs.len(),
                train.len(),
                val.len()
            ),
        ));
    }
    let rows = |v: Vec<&(i64, usize, usize)>| v.into_iter().map(|&(_, l, d)| (l, d)).collect();
    Ok(Pairs { file: path.to_path_buf(), train: rows(train), val: rows(val) })
}

/// The contrastive loss of a block of pairs, through the training path.
fn pair_loss(
    enc: &Encoder,
    layout: &TokenLayout,
    features: &[f32],
    pairs: &[(usize, usize)],
    scale: &Var,
    precision: Precision,
    dev: &Device,
) -> Result<Tensor> {
    let (l, d): (Vec<usize>, Vec<usize>) = pairs.iter().copied().unzip();
    let tokens = |rows: &[usize]| -> Result<Tensor> {
        Ok(tokens_tensor(layout, features, rows, dev)?.to_dtype(precision.dtype())?)
    };
    let za = enc.embed_for_training(&tokens(&l)?)?;
    let zb = enc.embed_for_training(&tokens(&d)?)?;
    contrastive_loss(&za, &zb, scale.as_tensor())
}

/// The checkpoint's name of the contrastive loss's learned logit scale.
const LOGIT_SCALE: &str = "contrastive.logit_scale";

pub fn run_train_encoder(opts: &EncoderTrainOptions, progress: &indicatif::ProgressBar) -> Result<EncoderCard> {
    let dev = opts.device.open()?;
    opts.pretrain.precision.warn_if_slow_on(&dev);
    let shards = shard_paths(&opts.spectra, ShardKind::Spectra)?;
    let npix = opts.window.npix;
    let p = &opts.pretrain;
    let crossmatch = match &opts.pairs {
        Some(path) if p.contrastive_weight > 0.0 => Some((path, read_crossmatch(path)?)),
        _ => None,
    };
    let (mut ids, mut surveys, mut source_ids) = (Vec::new(), Vec::new(), Vec::new());
    let mut features = Vec::new();
    for s in &shards {
        for_each_batch::<EncoderError>(s, &opts.window, 2048, RawPixels::Drop, |b| {
            ids.extend(b.spectrum_id);
            if crossmatch.is_some() {
                surveys.extend(b.survey);
                source_ids.extend(b.source_id);
            }
            features.extend(b.features);
            Ok(())
        })?;
    }
    let seed = p.seed;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| id_hash(&ids[a], seed).total_cmp(&id_hash(&ids[b], seed)));
    if opts.max_spectra > 0 {
        order.truncate(opts.max_spectra);
    }
    let (val, train): (Vec<usize>, Vec<usize>) =
        order.iter().partition(|&&i| id_hash(&ids[i], seed ^ 0x7A1) < opts.val_fraction);
    if train.len() < 2 || val.is_empty() {
        return Err(EncoderError::Invalid(format!(
            "too few spectra to pre-train on ({} train, {} validation)",
            train.len(),
            val.len()
        )));
    }
    let pairs = match &crossmatch {
        Some((path, table)) => Some(match_pairs(path, table, &surveys, &source_ids, seed, opts.val_fraction)?),
        None => None,
    };
    let (mw, cw) = (p.masked_weight, if pairs.is_some() { p.contrastive_weight } else { 0.0 });
    if mw <= 0.0 && cw <= 0.0 {
        return Err(EncoderError::Invalid(
            "nothing to train: the masked-token weight is 0 and there are no pairs with a contrastive weight".into(),
        ));
    }
    let layout = TokenLayout::specclip(npix);
    let config = EncoderConfig::preset(opts.preset, layout.n_tokens(), layout.token_dim());
    let enc = Encoder::init(config, seed, &dev)?;
    // The training set: the encoder's weights, plus the contrastive loss's learned temperature.
    let mut params: Params = enc.params.clone();
    let scale = match &pairs {
        Some(_) => {
            let v = Var::new(&[INITIAL_LOGIT_SCALE], &dev)?;
            params.insert(LOGIT_SCALE.into(), v.clone());
            Some(v)
        }
        None => None,
    };
    tracing::info!(
        n_train = train.len(),
        n_val = val.len(),
        pairs = pairs.as_ref().map_or(0, |x| x.train.len()),
        parameters = enc.n_parameters(),
        "pre-training the encoder"
    );
    let mut opt = AdamW::new(vars(&params), AdamWParams::new(p.learning_rate, p.weight_decay))?;
    // Validation masks are drawn once, so epochs are compared on the same task.
    let mut val_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5A1);
    let val_masks: Vec<(Vec<usize>, Tensor)> = val
        .chunks(p.batch_size)
        .map(|rows| {
            let m = random_mask(rows.len(), layout.n_tokens(), p.mask_chunks, p.mask_chunk_len, &mut val_rng, &dev)?;
            Ok((rows.to_vec(), m))
        })
        .collect::<Result<_>>()?;
    // (total, contrastive, retrieval top-1) on the validation spectra and pairs.
    let validate = |enc: &Encoder| -> Result<(f64, f64, f64)> {
        let mut masked = 0.0;
        if mw > 0.0 {
            for (rows, m) in &val_masks {
                let l: f32 = enc.masked_loss(&tokens_tensor(&layout, &features, rows, &dev)?, m)?.to_scalar()?;
                masked += l as f64 * rows.len() as f64;
            }
            masked /= val.len() as f64;
        }
        let (Some(pairs), Some(scale)) = (&pairs, &scale) else { return Ok((masked, f64::NAN, f64::NAN)) };
        let (l, d): (Vec<usize>, Vec<usize>) = pairs.val.iter().copied().unzip();
        let embed = |rows: &[usize]| -> Result<Tensor> {
            let parts = rows
                .chunks(p.batch_size)
                .map(|c| enc.embed(&tokens_tensor(&layout, &features, c, &dev)?))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?)
        };
        let (za, zb) = (embed(&l)?, embed(&d)?);
        let c = contrastive_loss(&za, &zb, scale.as_tensor())?.to_scalar::<f32>()? as f64;
        let top1 = retrieval_top1(&za, &zb)?;
        Ok((mw * masked + cw * c, c, top1))
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
        if let Some(pairs) = &pairs {
            for &(l, d) in pairs.train.iter().chain(&pairs.val) {
                h.update(ids[l].as_bytes());
                h.update(ids[d].as_bytes());
            }
        }
        format!("{:x}", h.finalize())
    };
    let pair_batch = p.pair_batch();
    let pair_batches = pairs.as_ref().map_or(0, |x| x.train.len().div_ceil(pair_batch));
    let steps_per_epoch = if mw > 0.0 { train.len().div_ceil(p.batch_size) } else { pair_batches };
    let total_steps = (steps_per_epoch * p.max_epochs).max(1);
    if let Some(pairs) = &pairs {
        // One pair batch per step: with few steps per epoch, an epoch sees only some of the pairs.
        let seen = (steps_per_epoch.min(pair_batches) * pair_batch).min(pairs.train.len());
        tracing::info!(pair_batch, pairs_per_epoch = seen, train_pairs = pairs.train.len(), "contrastive batches");
        if seen < pairs.train.len() {
            tracing::warn!(
                "an epoch sees {seen} of the {} training pairs (one batch of {pair_batch} per step, {steps_per_epoch} steps); \
                 --pair-batch-size {} would show every pair every epoch",
                pairs.train.len(),
                pairs.train.len().div_ceil(steps_per_epoch)
            );
        }
    }
    progress.set_length(p.max_epochs as u64);
    std::fs::create_dir_all(&opts.out).map_err(|e| EncoderError::io(&opts.out, e))?;
    let ckpt = Checkpoint::paths(&opts.out);
    let resumed = match opts.resume {
        true => Checkpoint::load(&opts.out, &params, &enc.config, &mut opt, &data_sha256, p)?,
        false => None,
    };
    let mut state = match resumed {
        Some(state) => {
            tracing::info!(epoch = state.epoch, "resuming from the checkpoint");
            state
        }
        None => {
            let (initial, _, _) = validate(&enc)?;
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
    let mut best_weights = snapshot(&params)?;
    if state.best_epoch > 0 {
        // The best weights so far live in their own file; the current ones are in `params`.
        best_weights = load_weights(&ckpt.1, &params, &dev)?;
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
        // Pairs in their own stream, so adding them leaves the masked-token batches as they were.
        let mut shuffled_pairs = pairs.as_ref().map(|x| x.train.clone()).unwrap_or_default();
        let pair_seed = seed ^ 0xC11F ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        shuffled_pairs.shuffle(&mut ChaCha8Rng::seed_from_u64(pair_seed));
        let (mut sum, mut weight) = (0.0, 0.0);
        for b in 0..steps_per_epoch {
            // Cosine decay of the learning rate over the whole run (SpecCLIP's schedule).
            let step = (epoch - 1) * steps_per_epoch + b;
            let lr = p.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total_steps as f64).cos());
            opt.set_learning_rate(lr);
            let mut loss = None;
            let mut rows_in_step = 0;
            if mw > 0.0 {
                let end = ((b + 1) * p.batch_size).min(shuffled.len());
                let rows = &shuffled[b * p.batch_size..end];
                let m = random_mask(rows.len(), layout.n_tokens(), p.mask_chunks, p.mask_chunk_len, &mut rng, &dev)?;
                let tokens = tokens_tensor(&layout, &features, rows, &dev)?.to_dtype(p.precision.dtype())?;
                let masked = enc.masked_loss(&tokens, &m)?;
                loss = Some(if mw == 1.0 { masked } else { (masked * mw)? });
                rows_in_step = rows.len();
            }
            if let (Some(scale), true) = (&scale, pair_batches > 0) {
                let k = b % pair_batches;
                let chunk = &shuffled_pairs[k * pair_batch..((k + 1) * pair_batch).min(shuffled_pairs.len())];
                let c = (pair_loss(&enc, &layout, &features, chunk, scale, p.precision, &dev)? * cw)?;
                loss = Some(match loss {
                    Some(l) => (l + c)?,
                    None => c,
                });
                if rows_in_step == 0 {
                    rows_in_step = chunk.len();
                }
            }
            let loss = loss.expect("a step has a masked or a contrastive term");
            opt.backward_step(&loss)?;
            if let Some(scale) = &scale {
                // CLIP's ceiling, applied on the device: no host round trip per step.
                scale.set(&scale.as_tensor().minimum(MAX_LOGIT_SCALE)?)?;
            }
            sum += loss.to_scalar::<f32>()? as f64 * rows_in_step as f64;
            weight += rows_in_step as f64;
        }
        let train_loss = sum / weight.max(1.0);
        state.train_loss.push(train_loss);
        let (v, c, top1) = validate(&enc)?;
        state.val_loss.push(v);
        if pairs.is_some() {
            state.val_contrastive.push(c);
            state.val_top1.push(top1);
        }
        progress.inc(1);
        tracing::info!(epoch, train_loss, val_loss = v, val_contrastive = c, val_top1 = top1, "encoder epoch");
        if v < state.best {
            (state.best, state.best_epoch, state.since) = (v, epoch, 0);
            best_weights = snapshot(&params)?;
            save_params(&ckpt.1, &params)?;
        } else {
            state.since += 1;
        }
        state.epoch = epoch;
        state.save(&opts.out, &params, &enc.config, &opt, &data_sha256, p)?;
    }
    restore(&params, &best_weights)?;
    let temperature = match &scale {
        Some(s) => Some(1.0 / (s.as_tensor().to_vec1::<f32>()?[0] as f64).exp()),
        None => None,
    };
    let objective = Objective {
        masked_weight: mw,
        contrastive_weight: cw,
        pairs: pairs.as_ref().map(|x| x.file.display().to_string()),
        n_train_pairs: pairs.as_ref().map_or(0, |x| x.train.len()),
        n_val_pairs: pairs.as_ref().map_or(0, |x| x.val.len()),
        temperature,
        val_contrastive_loss: state.val_contrastive.clone(),
        val_retrieval_top1: state.val_top1.clone(),
    };
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
        objective: Some(objective),
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
    /// Per epoch on the validation pairs (contrastive objective only).
    #[serde(default)]
    val_contrastive: Vec<f64>,
    #[serde(default)]
    val_top1: Vec<f64>,
}

impl Checkpoint {
    fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        (
            dir.join(layout::ENCODER_CHECKPOINT),
            dir.join(layout::ENCODER_CHECKPOINT_BEST),
            dir.join(layout::ENCODER_CHECKPOINT_STATE),
            dir.join(layout::ENCODER_CHECKPOINT_OPTIMIZER),
        )
    }

    /// `params` is the training set: the encoder's weights and, with pairs, the logit scale.
    fn save(
        &self,
        dir: &Path,
        params: &Params,
        config: &EncoderConfig,
        opt: &AdamW,
        data_sha256: &str,
        p: &PretrainConfig,
    ) -> Result<()> {
        let (current, _, json, optimizer) = Self::paths(dir);
        save_params(&current, params)?;
        let (steps, moments) = opt.state();
        let mut named = Params::new();
        for (name, (m, v)) in params.keys().zip(moments) {
            named.insert(format!("m.{name}"), Var::from_tensor(&m)?);
            named.insert(format!("v.{name}"), Var::from_tensor(&v)?);
        }
        save_params(&optimizer, &named)?;
        let mut c = self.clone();
        c.optimizer_steps = steps;
        c.data_sha256 = data_sha256.to_string();
        c.architecture = Some(config.clone());
        c.pretraining = Some(p.clone());
        Ok(write_json(&json, &c)?)
    }

    /// The checkpoint of the same data and settings, with its current weights loaded into `enc`;
    /// None when there is none or it belongs to another run.
    fn load(
        dir: &Path,
        params: &Params,
        config: &EncoderConfig,
        opt: &mut AdamW,
        data_sha256: &str,
        p: &PretrainConfig,
    ) -> Result<Option<Self>> {
        let (current, _, json, optimizer) = Self::paths(dir);
        if !json.exists() {
            return Ok(None);
        }
        let c: Self = read_json(&json)?;
        if c.data_sha256 != data_sha256 || c.architecture.as_ref() != Some(config) || c.pretraining.as_ref() != Some(p)
        {
            tracing::warn!(checkpoint = %json.display(), "checkpoint of other data or settings: starting afresh");
            return Ok(None);
        }
        let w = load_weights(&current, params, &Device::Cpu)?;
        restore(params, &w)?;
        // The weights must be put back on the device they train on (restore copies values into
        // the existing variables), and so must the optimiser's moments.
        let dev = params.values().next().map(|v| v.device().clone()).unwrap_or(Device::Cpu);
        if optimizer.exists() {
            let map = read_tensors(&optimizer, &dev)?;
            let moments = params
                .keys()
                .map(|k| match (map.get(&format!("m.{k}")), map.get(&format!("v.{k}"))) {
                    (Some(m), Some(v)) => Ok((m.clone(), v.clone())),
                    _ => Err(EncoderError::bad(&optimizer, format!("no moments for '{k}'"))),
                })
                .collect::<Result<Vec<_>>>()?;
            opt.restore(c.optimizer_steps, &moments)?;
        } else {
            tracing::warn!(checkpoint = %json.display(), "checkpoint without optimiser state: AdamW restarts");
        }
        Ok(Some(c))
    }
}

/// Weights of a file, in `params`' order (for `restore`), on `dev`.
fn load_weights(path: &Path, params: &Params, dev: &Device) -> Result<Vec<Tensor>> {
    let map = read_tensors(path, dev)?;
    params
        .keys()
        .map(|k| map.get(k).cloned().ok_or_else(|| EncoderError::bad(path, format!("no tensor '{k}'"))))
        .collect()
}

pub fn save_encoder(dir: &Path, enc: &Encoder, card: &mut EncoderCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| EncoderError::io(dir, e))?;
    card.weights_sha256 = save_params(&dir.join(ENCODER_WEIGHTS), &enc.params)?;
    Ok(write_json(&dir.join(ENCODER_CARD), card)?)
}

pub fn load_encoder(dir: &Path, dev: &Device) -> Result<(Encoder, EncoderCard)> {
    let card_path = dir.join(ENCODER_CARD);
    let card: EncoderCard = read_json(&card_path)?;
    if card.format != ENCODER_FORMAT {
        return Err(EncoderError::bad(&card_path, format!("format '{}' is not {ENCODER_FORMAT}", card.format)));
    }
    let path = dir.join(ENCODER_WEIGHTS);
    let tensors = load_tensors(&path, &card.weights_sha256, dev)?;
    let enc = Encoder::from_tensors(card.architecture.clone(), tensors).map_err(|e| EncoderError::bad(&path, e))?;
    Ok((enc, card))
}
