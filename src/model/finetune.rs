//! `starpipe finetune`: adapt a pre-trained model to another survey with a few of its labels.
//!
//! The target survey's labelled stars are split once by key hash (`split::TestSplit`): the test
//! part is never touched here, and the `--n-train` stars used come first in a fixed hash order, so
//! larger label budgets extend smaller ones and every strategy sees the same stars.

use super::calibrate::{MIN_STARS, sigma_scale};
use super::card::{ADAPTER_FORMAT, AdapterCard, DataSource, SelectionCuts, TrainingRecord};
use super::data::{LabelledCounts, load_labelled};
use super::fit::{FitConfig, FitReport, fit};
use super::mlp::{Adapter, Lora, LoraConfig, Mlp, Network, ResHead, ResHeadConfig};
use super::predict::predict_standardized;
use super::split::TestSplit;
use super::store::{load_model, save_adapter};
use super::train::physical_metrics;
use super::{ModelError, Result};
use crate::artifacts::discover::shard_paths;
use crate::labels::{LabelSpec, read_labels};
use crate::nn::device::ComputeDevice;
use crate::nn::params::clone_params;
use crate::schema::columns::normalized_spectra as ns;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The pre-trained model unchanged.
    Zeroshot,
    /// Every weight trainable, small learning rate.
    Full,
    /// Low-rank updates W + (α/r)·B·A on chosen layers, base frozen.
    Lora,
    /// Frozen network plus a small MLP on its last hidden layer, added to its output.
    Reshead,
}

impl Strategy {
    /// Default learning rate: full fine-tuning 10× below pre-training (arXiv 2602.15021, the transfer recipe); the
    /// adapters start from zero and train few weights, so they take the pre-training rate.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            Strategy::Full => 1e-4,
            _ => 1e-3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    pub spectra: Vec<PathBuf>,
    pub labels: PathBuf,
    pub label_spec: LabelSpec,
    pub model: PathBuf,
    pub out: PathBuf,
    pub strategy: Strategy,
    /// Target-survey labels used (training + validation).
    pub n_train: usize,
    pub val_fraction: f64,
    pub split: TestSplit,
    pub lora_rank: usize,
    pub lora_alpha: f64,
    /// Layers LoRA adapts; empty = every hidden Linear layer.
    pub lora_layers: Vec<String>,
    pub reshead_hidden: usize,
    pub selection: SelectionCuts,
    pub fit: FitConfig,
    pub device: ComputeDevice,
}

impl FinetuneOptions {
    pub fn new(spectra: Vec<PathBuf>, labels: PathBuf, model: PathBuf, out: PathBuf, strategy: Strategy) -> Self {
        Self {
            spectra,
            labels,
            label_spec: LabelSpec::new(ns::TARGETID),
            model,
            out,
            strategy,
            n_train: 500,
            val_fraction: 0.2,
            split: TestSplit::default(),
            lora_rank: 8,
            lora_alpha: 16.0,
            lora_layers: Vec::new(),
            reshead_hidden: 32,
            selection: SelectionCuts::default(),
            fit: FitConfig {
                learning_rate: strategy.default_learning_rate(),
                weight_decay: 1e-4,
                batch_size: 128,
                max_epochs: 300,
                patience: 20,
                seed: 1,
                augment: None,
                balance_feh: false,
                precision: crate::nn::precision::Precision::F32,
            },
            device: ComputeDevice::Cpu,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FinetuneSummary {
    pub counts: LabelledCounts,
    pub card: AdapterCard,
}

pub fn run_finetune(opts: &FinetuneOptions, progress: &indicatif::ProgressBar) -> Result<FinetuneSummary> {
    let dev = opts.device.open()?;
    opts.fit.precision.warn_if_slow_on(&dev);
    let (base, base_card) = load_model(&opts.model, &dev)?;
    if opts.fit.augment.is_some() && !matches!(base_card.input, super::card::InputSpec::Pixels { .. }) {
        return Err(ModelError::Invalid(
            "--augment perturbs spectra: it applies to pixel models, not embeddings".into(),
        ));
    }
    // The adapter first: a bad --lora-layers is refused before any data is read.
    let seed = opts.fit.seed;
    let adapter = match opts.strategy {
        Strategy::Zeroshot => Adapter::ZeroShot,
        Strategy::Full => Adapter::Full(Mlp { config: base.config.clone(), params: clone_params(&base.params)? }),
        Strategy::Lora => {
            let layers = if opts.lora_layers.is_empty() {
                (0..base.config.hidden.len()).map(|i| format!("hidden.{i}")).collect()
            } else {
                opts.lora_layers.clone()
            };
            let cfg = LoraConfig { rank: opts.lora_rank, alpha: opts.lora_alpha, layers };
            Adapter::Lora(Lora::init(cfg, &base.config, seed, &dev)?)
        }
        Strategy::Reshead => Adapter::ResHead(ResHead::init(
            ResHeadConfig { n_in: base.config.last_hidden(), hidden: opts.reshead_hidden },
            seed,
            &dev,
        )?),
    };
    let input = base_card.input.clone();
    let shards = shard_paths(&opts.spectra, input.shard_kind())?;
    let labels = read_labels(&opts.labels, &opts.label_spec)?;
    let set = load_labelled(&shards, &input, &labels, &opts.selection)?;
    let unique: Vec<i64> = {
        let mut seen = HashSet::new();
        set.key.iter().copied().filter(|k| seen.insert(*k)).collect()
    };
    let (train_keys, val_keys) = opts.split.training_subset(&unique, opts.n_train, opts.val_fraction);
    if train_keys.len() + val_keys.len() < opts.n_train {
        tracing::warn!(
            requested = opts.n_train,
            available = train_keys.len() + val_keys.len(),
            "fewer labelled target stars outside the test split than --n-train"
        );
    }
    let (train_keys, val_keys): (HashSet<i64>, HashSet<i64>) =
        (train_keys.into_iter().collect(), val_keys.into_iter().collect());
    let train_rows: Vec<usize> = (0..set.len()).filter(|&i| train_keys.contains(&set.key[i])).collect();
    let val_rows: Vec<usize> = (0..set.len()).filter(|&i| val_keys.contains(&set.key[i])).collect();
    if opts.strategy != Strategy::Zeroshot && train_rows.is_empty() {
        return Err(ModelError::bad(&opts.labels, format!("no target-survey training stars ({:?})", set.counts)));
    }
    let scaling = base_card.label_scaling;
    let train = set.dataset(&train_rows, &scaling);
    let val = set.dataset(&val_rows, &scaling);

    let net = Network { base: &base, adapter: &adapter };
    let report = match adapter.trainable() {
        Some(params) => {
            tracing::info!(
                strategy = adapter.kind(),
                n_train = train.len(),
                n_val = val.len(),
                trainable = params.values().map(|v| v.elem_count()).sum::<usize>(),
                "fine-tuning"
            );
            Some(fit(&net, params, &train, &val, &opts.fit, &dev, progress)?)
        }
        None => None,
    };
    let outputs = predict_standardized(&net, &val.x, val.n_features, 4096, &dev)?;
    // Zero-shot keeps the base calibration by definition; adapters recalibrate on target stars
    // when there are enough of them.
    let recalibrated = opts.strategy != Strategy::Zeroshot && outputs.len() >= MIN_STARS;
    let scale = if recalibrated { sigma_scale(&outputs, &val.y) } else { base_card.sigma_scale };
    let val_ref: Vec<[f64; 3]> = val_rows.iter().map(|&i| set.labels[i]).collect();
    let held_out = if recalibrated { super::calibrate::held_out_coverage(&outputs, &val.y) } else { None };
    let mut validation = physical_metrics(&outputs, &val_ref, &scaling, &scale, 200, held_out);
    if !recalibrated {
        // The base's factor was not set by these stars: their coverage is already held out.
        validation.iter_mut().for_each(|m| m.within_1sigma_held_out = Some(m.metrics.within_1sigma));
    }
    let mut all_rows = train_rows.clone();
    all_rows.extend(&val_rows);
    let mut card = AdapterCard {
        format: ADAPTER_FORMAT.into(),
        starpipe_version: crate::VERSION.into(),
        kind: adapter.kind().into(),
        base_model_sha256: base_card.weights_sha256.clone(),
        weights_sha256: None,
        lora: if let Adapter::Lora(l) = &adapter { Some(l.config.clone()) } else { None },
        reshead: if let Adapter::ResHead(r) = &adapter { Some(r.config.clone()) } else { None },
        n_trainable_parameters: adapter.trainable().map_or(0, |p| p.values().map(|v| v.elem_count()).sum()),
        sigma_scale: scale,
        error_model: None,
        test_split: opts.split,
        n_train_requested: opts.n_train,
        training: Some(TrainingRecord {
            source: DataSource::new(&shards, std::slice::from_ref(&opts.labels), &opts.label_spec, &opts.selection)?,
            n_candidates: set.len(),
            n_train: train_keys.len(),
            n_val: val_keys.len(),
            data_sha256: set.hash_rows(&all_rows),
            fit: opts.fit.clone(),
            report: report.unwrap_or_else(FitReport::default),
        }),
        validation,
    };
    save_adapter(&opts.out, &adapter, &mut card)?;
    Ok(FinetuneSummary { counts: set.counts, card })
}
