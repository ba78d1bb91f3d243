//! The optimisation loop shared by pre-training and every fine-tuning strategy: AdamW on the
//! Gaussian NLL, mini-batches in a seeded order, early stopping on a validation set with the best
//! weights restored.

use super::Result;
use super::loss::gaussian_nll;
use super::mlp::{Mode, Network};
use crate::nn::params::{Params, restore, snapshot, vars};
use crate::nn::precision::Precision;
use crate::nn::tensors::rows_tensor;
use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub seed: u64,
    /// Augment pixel inputs in every batch (`augment`); None leaves them as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<super::augment::Augmentation>,
    /// Label-balanced sampling in [Fe/H]: stars of sparse [Fe/H] bins are drawn several times per
    /// epoch (`feh_repeats`), against the pull of the metal-rich majority.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balance_feh: bool,
    /// Arithmetic of the training passes. bf16 is mixed precision: the weights AdamW updates stay
    /// f32 and are cast to bf16 inside each step's graph; layer norm, loss and validation in f32.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl FitConfig {
    /// arXiv 2602.15021: AdamW lr 1e-3, weight decay 1e-4, batch 512, patience 10.
    pub fn pretraining() -> Self {
        Self {
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            batch_size: 512,
            max_epochs: 200,
            patience: 10,
            seed: 1,
            augment: None,
            balance_feh: false,
            precision: Precision::F32,
        }
    }
}

/// Inputs and standardised labels, row-major.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub n_features: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len() / 3
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub epochs_run: usize,
    /// 1-based epoch whose weights were kept (0: the starting weights were best).
    pub best_epoch: usize,
    pub initial_val_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
}

/// Mean NLL of a data set in evaluation mode.
pub fn mean_loss(net: &Network, data: &Dataset, dev: &Device) -> Result<f64> {
    let mut total = 0.0;
    let n = data.len();
    for start in (0..n).step_by(4096) {
        let idx: Vec<usize> = (start..(start + 4096).min(n)).collect();
        let x = rows_tensor(&data.x, data.n_features, &idx, dev)?;
        let y = rows_tensor(&data.y, 3, &idx, dev)?;
        let loss: f32 = gaussian_nll(&net.forward(&x, &mut Mode::Eval)?, &y)?.to_scalar()?;
        total += loss as f64 * idx.len() as f64;
    }
    Ok(total / n.max(1) as f64)
}

/// Trains `trainable` (which `net` must use) and leaves it at the best validation epoch.
/// Without a validation set it runs `max_epochs` and keeps the last weights.
/// Most draws per epoch of one star under [`FitConfig::balance_feh`].
pub const MAX_FEH_REPEATS: usize = 8;

/// Draws per epoch of each training star so that every [Fe/H] bin (half a standard deviation of
/// the standardised label wide) weighs about as much as the median bin, at most
/// [`MAX_FEH_REPEATS`] times a star: the metal-poor tail, a tenth of a Milky Way sample, is then
/// not averaged away towards the metal-rich mean.
pub fn feh_repeats(train: &Dataset) -> Vec<usize> {
    let bin = |i: usize| (train.y[i * 3 + 2] / 0.5).floor() as i64;
    let mut counts: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    for i in 0..train.len() {
        *counts.entry(bin(i)).or_default() += 1;
    }
    let mut sizes: Vec<usize> = counts.values().copied().collect();
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(1) as f64;
    (0..train.len()).map(|i| ((median / counts[&bin(i)] as f64).round() as usize).clamp(1, MAX_FEH_REPEATS)).collect()
}

pub fn fit(
    net: &Network,
    trainable: &Params,
    train: &Dataset,
    val: &Dataset,
    cfg: &FitConfig,
    dev: &Device,
    progress: &indicatif::ProgressBar,
) -> Result<FitReport> {
    let mut opt = AdamW::new(
        vars(trainable),
        ParamsAdamW { lr: cfg.learning_rate, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() },
    )?;
    let mut order_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xD0);
    let mut augment_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xA6);
    let mut report = FitReport::default();
    let has_val = !val.is_empty();
    let mut best = if has_val { Some(mean_loss(net, val, dev)?) } else { None };
    report.initial_val_loss = best;
    let mut best_weights = snapshot(trainable)?;
    let mut since_best = 0;
    let mut order: Vec<usize> = if cfg.balance_feh {
        feh_repeats(train).iter().enumerate().flat_map(|(i, &r)| std::iter::repeat_n(i, r)).collect()
    } else {
        (0..train.len()).collect()
    };
    progress.set_length(cfg.max_epochs as u64);
    let mut heartbeat = crate::progress::Heartbeat::default();
    for epoch in 1..=cfg.max_epochs {
        order.shuffle(&mut order_rng);
        let mut epoch_loss = 0.0;
        for batch in order.chunks(cfg.batch_size.max(1)) {
            let x = match &cfg.augment {
                Some(a) => {
                    let n = train.n_features;
                    let mut buf = Vec::with_capacity(batch.len() * n);
                    for &r in batch {
                        buf.extend_from_slice(&train.x[r * n..(r + 1) * n]);
                    }
                    for row in buf.chunks_exact_mut(n) {
                        a.apply(row, &mut augment_rng);
                    }
                    candle_core::Tensor::from_vec(buf, (batch.len(), n), dev)?
                }
                None => rows_tensor(&train.x, train.n_features, batch, dev)?,
            };
            let y = rows_tensor(&train.y, 3, batch, dev)?;
            let x = x.to_dtype(cfg.precision.dtype())?;
            let out = net.forward(&x, &mut Mode::Train(&mut dropout_rng))?.to_dtype(DType::F32)?;
            let loss = gaussian_nll(&out, &y)?;
            opt.backward_step(&loss)?;
            epoch_loss += loss.to_scalar::<f32>()? as f64 * batch.len() as f64;
        }
        report.epochs_run = epoch;
        report.train_loss.push(epoch_loss / train.len().max(1) as f64);
        progress.inc(1);
        let Some(best_loss) = best else { continue };
        let v = mean_loss(net, val, dev)?;
        report.val_loss.push(v);
        let train_loss = report.train_loss[epoch - 1];
        if heartbeat.due(progress) {
            tracing::info!(epoch, max_epochs = cfg.max_epochs, train_loss, val_loss = v, "epoch done");
        } else {
            tracing::debug!(epoch, train_loss, val_loss = v, "epoch done");
        }
        if v < best_loss {
            best = Some(v);
            best_weights = snapshot(trainable)?;
            report.best_epoch = epoch;
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    if has_val {
        restore(trainable, &best_weights)?;
    } else {
        report.best_epoch = report.epochs_run;
    }
    report.best_val_loss = best;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_feh_bins_are_drawn_more_often() {
        // 900 metal-rich stars around 0, 60 at −1.5σ, 10 at −3σ (standardised [Fe/H]).
        let mut y = Vec::new();
        for i in 0..970 {
            let feh = if i < 900 {
                0.1 * ((i % 7) as f32 - 3.0) / 3.0
            } else if i < 960 {
                -1.5
            } else {
                -3.0
            };
            y.extend([0.0, 0.0, feh]);
        }
        let data = Dataset { x: vec![0.0; 970], y, n_features: 1 };
        let r = feh_repeats(&data);
        assert!(r[..900].iter().all(|&k| k == 1));
        assert!(r[900] > 1 && r[969] >= r[900] && r[969] <= MAX_FEH_REPEATS, "{} {}", r[900], r[969]);
    }
}
