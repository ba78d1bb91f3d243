//! The checkpoint a killed `train-encoder` resumes from: weights, best weights, optimiser moments
//! and the run's state, written after every epoch.

use super::card::PretrainConfig;
use super::network::EncoderConfig;
use super::store::load_weights;
use super::{EncoderError, Result};
use crate::artifacts::layout;
use crate::nn::adamw::AdamW;
use crate::nn::params::{Params, restore};
use crate::nn::weights::{read_json, read_tensors, save_params, write_json};
use candle_core::{Device, Var};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Training state after an epoch, so a killed job (a SLURM time limit) resumes at the next
/// epoch: `checkpoint.json` (counters, curves, what it was trained on), `checkpoint.safetensors`
/// (current weights), `checkpoint-best.safetensors` and `checkpoint-optimizer.safetensors` (AdamW's
/// moment estimates; the step count is in the JSON). With batch order and masks drawn from
/// (seed, epoch), a resumed run ends bit-identical to an uninterrupted one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    pub(super) epoch: usize,
    pub(super) initial_val_loss: f64,
    pub(super) best: f64,
    pub(super) best_epoch: usize,
    pub(super) since: usize,
    pub(super) train_loss: Vec<f64>,
    pub(super) val_loss: Vec<f64>,
    pub(super) data_sha256: String,
    pub(super) architecture: Option<EncoderConfig>,
    pub(super) pretraining: Option<PretrainConfig>,
    /// AdamW steps taken (its moments are in checkpoint-optimizer.safetensors).
    #[serde(default)]
    pub(super) optimizer_steps: usize,
    /// Per epoch on the validation pairs (contrastive objective only).
    #[serde(default)]
    pub(super) val_contrastive: Vec<f64>,
    #[serde(default)]
    pub(super) val_top1: Vec<f64>,
}

impl Checkpoint {
    pub(super) fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        (
            dir.join(layout::ENCODER_CHECKPOINT),
            dir.join(layout::ENCODER_CHECKPOINT_BEST),
            dir.join(layout::ENCODER_CHECKPOINT_STATE),
            dir.join(layout::ENCODER_CHECKPOINT_OPTIMIZER),
        )
    }

    /// `params` is the training set: the encoder's weights and, with pairs, the logit scale.
    pub(super) fn save(
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
    pub(super) fn load(
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
