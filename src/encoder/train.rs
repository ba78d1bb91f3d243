//! `starpipe train-encoder`: self-supervised masked-token pre-training of the encoder on
//! normalised spectra of one or both surveys (and cross-survey pairs, `pairs`), resumable from
//! its `checkpoint`. The card is `card`, the directory `store`; both are re-exported here.

pub use super::card::{ENCODER_FORMAT, EncoderCard, Objective, PretrainConfig};
use super::checkpoint::Checkpoint;
use super::network::{
    Encoder, EncoderConfig, EncoderPreset, INITIAL_LOGIT_SCALE, MAX_LOGIT_SCALE, contrastive_loss, random_mask,
    retrieval_top1,
};
use super::pairs::{id_hash, match_pairs, pair_loss, read_crossmatch};
use super::store::load_weights;
pub use super::store::{load_encoder, save_encoder};
use super::tokens::TokenLayout;
pub use super::tokens::tokens_tensor;
use super::{EncoderError, Result};
use crate::artifacts::ShardKind;
use crate::artifacts::discover::shard_paths;
use crate::grid::{GridPreset, LogGrid};
use crate::nn::adamw::{AdamW, AdamWParams};
use crate::nn::device::ComputeDevice;
use crate::nn::params::{Params, restore, snapshot, vars};
use crate::nn::weights::save_params;
use crate::shards::read::{RawPixels, for_each_batch};
use candle_core::{Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

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
