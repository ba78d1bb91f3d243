//! `starpipe train`: pre-train an MLP on one survey's normalised spectra and labels.

use super::calibrate::sigma_scale;
use super::card::{
    DataSource, InputSpec, LabelRange, LabelScaling, MODEL_FORMAT, ModelCard, ParameterMetrics, SelectionCuts,
    TrainingRecord,
};
use super::data::{LabelledCounts, LabelledSet, embedding_shard_info, load_labelled, shard_grid};
use super::fit::{FitConfig, fit};
use super::mlp::{Adapter, Mlp, MlpConfig, Network};
use super::predict::{hidden_features, predict_standardized, to_physical};
use super::split::unit_hash;
use super::store::save_model;
use super::{ModelError, PARAMETERS, Result};
use crate::grid::{GridPreset, LogGrid};
use crate::labels::{LabelSpec, read_label_tables};
use crate::nn::device::ComputeDevice;
use crate::schema::columns::normalized_spectra as ns;
use crate::trust::metrics;
use crate::trust::ood::OodModel;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Spectra shards or directories of them.
    pub spectra: Vec<PathBuf>,
    /// Label tables, read as one (`labels::read_label_tables`): a mock survey's and library
    /// renders', say.
    pub labels: Vec<PathBuf>,
    pub label_spec: LabelSpec,
    pub out: PathBuf,
    /// Grid window the model reads from spectra shards; default SpecCLIP's 3999–5599 Å.
    pub window: LogGrid,
    /// Hidden widths; default by input (pixels 512,256,64; embeddings 256,64).
    pub hidden: Option<Vec<usize>>,
    pub dropout: f32,
    pub selection: SelectionCuts,
    /// Fraction of objects (by key hash) held out for early stopping and σ calibration.
    pub val_fraction: f64,
    pub fit: FitConfig,
    pub device: ComputeDevice,
}

impl TrainOptions {
    pub fn new(spectra: Vec<PathBuf>, labels: Vec<PathBuf>, out: PathBuf) -> Self {
        Self {
            spectra,
            labels,
            label_spec: LabelSpec::new(ns::OBSID),
            out,
            window: LogGrid::preset(GridPreset::Specclip),
            hidden: None,
            dropout: 0.1,
            selection: SelectionCuts::default(),
            val_fraction: 0.1,
            fit: FitConfig::pretraining(),
            device: ComputeDevice::Cpu,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub counts: LabelledCounts,
    pub card: ModelCard,
}

/// Validation metrics in physical units, with calibrated errors.
pub(crate) fn physical_metrics(
    outputs: &[[f32; 6]],
    reference: &[[f64; 3]],
    scaling: &LabelScaling,
    sigma_scale: &[f64; 3],
    n_boot: usize,
    held_out: Option<[f64; 3]>,
) -> Vec<ParameterMetrics> {
    let est: Vec<_> =
        // A scale has no S/N term, so the S/N does not matter here.
        outputs.iter().map(|o| to_physical(o, scaling, &super::card::ErrorModel::scale_only(*sigma_scale), f32::NAN)).collect();
    PARAMETERS
        .iter()
        .map(|&p| {
            let i = p.index();
            let delta: Vec<f64> = est.iter().zip(reference).map(|(e, r)| e.value[i] - r[i]).collect();
            let sig: Vec<f64> = est.iter().map(|e| e.error[i]).collect();
            ParameterMetrics {
                parameter: p.name().into(),
                unit: p.unit().into(),
                metrics: metrics::compute(&delta, &sig, p.outlier_threshold(), n_boot, 7),
                within_1sigma_held_out: held_out.map(|c| c[i]),
            }
        })
        .collect()
}

pub(crate) fn rows_where(set: &LabelledSet, pred: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..set.len()).filter(|&i| pred(i)).collect()
}

pub fn run_train(opts: &TrainOptions, progress: &indicatif::ProgressBar) -> Result<TrainSummary> {
    let dev = opts.device.open()?;
    opts.fit.precision.warn_if_slow_on(&dev);
    let kind = crate::artifacts::discover::model_input_kind(&opts.spectra)?;
    let shards = crate::artifacts::discover::shard_paths(&opts.spectra, kind)?;
    let mut input = if kind == crate::artifacts::ShardKind::Spectra {
        for s in &shards {
            // Fail before reading anything if one shard cannot feed the window.
            let g = shard_grid(s)?;
            if super::data::window_offset(&g, &opts.window).is_none() {
                return Err(ModelError::bad(
                    s,
                    "shard grid does not cover the model window (see --wave-min/--wave-max)",
                ));
            }
        }
        InputSpec::Pixels { window: opts.window }
    } else {
        // Read raw embeddings first; their standardisation comes from the training rows below.
        let (encoder_sha256, dim) = embedding_shard_info(&shards[0])?;
        InputSpec::Embeddings { encoder_sha256, dim, mean: vec![0.0; dim], std: vec![1.0; dim] }
    };
    if opts.fit.augment.is_some() && !matches!(input, InputSpec::Pixels { .. }) {
        return Err(ModelError::Invalid(
            "--augment perturbs spectra: it applies to pixel models, not embeddings".into(),
        ));
    }
    let labels = read_label_tables(&opts.labels, &opts.label_spec)?;
    tracing::info!(shards = shards.len(), labels = labels.rows.len(), input = input.kind(), "reading labelled inputs");
    let mut set = load_labelled(&shards, &input, &labels, &opts.selection)?;
    let c = &set.counts;
    tracing::info!(
        read = c.spectra_read,
        without_label = c.without_label,
        below_min_snr = c.below_min_snr,
        label_error_too_large = c.label_error_too_large,
        used = c.used,
        "labelled spectra"
    );
    // Validation by object, so repeat spectra of one star never straddle the split.
    let seed = opts.fit.seed;
    let val_rows = rows_where(&set, |i| unit_hash(set.key[i], seed ^ 0x7A1) < opts.val_fraction);
    let train_rows = rows_where(&set, |i| unit_hash(set.key[i], seed ^ 0x7A1) >= opts.val_fraction);
    if train_rows.len() < 10 {
        return Err(ModelError::bad(
            &opts.labels[0],
            format!("only {} training spectra after the join and cuts ({:?})", train_rows.len(), set.counts),
        ));
    }
    if let InputSpec::Embeddings { dim, mean, std, .. } = &mut input {
        standardize_embeddings(&mut set, &train_rows, *dim, mean, std);
    }
    let train_labels: Vec<[f64; 3]> = train_rows.iter().map(|&i| set.labels[i]).collect();
    let scaling = LabelScaling::fit(&train_labels);
    let train = set.dataset(&train_rows, &scaling);
    let val = set.dataset(&val_rows, &scaling);
    let hidden = opts.hidden.clone().unwrap_or_else(|| match input {
        // arXiv 2602.15021: pixels 512 → 256 → 64; embeddings SpecCLIP's head, 256 → 64.
        InputSpec::Pixels { .. } => vec![512, 256, 64],
        InputSpec::Embeddings { .. } => vec![256, 64],
    });
    let config = MlpConfig { n_in: input.n_features(), hidden, layer_norm: true, dropout: opts.dropout };
    let model = Mlp::init(config, seed, &dev)?;
    tracing::info!(n_train = train.len(), n_val = val.len(), parameters = model.n_parameters(), "pre-training");
    // Pre-training is full training of a fresh network: `Mlp::clone` shares the weight storage, so
    // the "full" adapter trains `model` itself.
    let trained = Adapter::Full(model.clone());
    let report =
        fit(&Network { base: &model, adapter: &trained }, &model.params, &train, &val, &opts.fit, &dev, progress)?;
    let adapter = Adapter::ZeroShot;
    let outputs =
        predict_standardized(&Network { base: &model, adapter: &adapter }, &val.x, val.n_features, 4096, &dev)?;
    let scale = sigma_scale(&outputs, &val.y);
    let hidden = hidden_features(&model, &train.x, train.n_features, 4096, &dev)?;
    let ood = OodModel::fit(&hidden, model.config.last_hidden());
    if ood.is_none() {
        tracing::warn!("too few training spectra for an out-of-distribution model: predictions get no ood_score");
    }
    let val_ref: Vec<[f64; 3]> = val_rows.iter().map(|&i| set.labels[i]).collect();
    let held_out = super::calibrate::held_out_coverage(&outputs, &val.y);
    let validation = physical_metrics(&outputs, &val_ref, &scaling, &scale, 200, held_out);
    let mut all_rows = train_rows.clone();
    all_rows.extend(&val_rows);
    let mut card = ModelCard {
        format: MODEL_FORMAT.into(),
        starpipe_version: crate::VERSION.into(),
        input,
        architecture: model.config.clone(),
        n_parameters: model.n_parameters(),
        parameters: PARAMETERS.iter().map(|p| (p.name().to_string(), p.unit().to_string())).collect(),
        label_scaling: scaling,
        label_range: LabelRange::of(&train_labels),
        sigma_scale: scale,
        error_model: None,
        ood,
        training: TrainingRecord {
            source: DataSource::new(&shards, &opts.labels, &opts.label_spec, &opts.selection)?,
            n_candidates: set.len(),
            n_train: train.len(),
            n_val: val.len(),
            data_sha256: set.hash_rows(&all_rows),
            fit: opts.fit.clone(),
            report,
        },
        validation,
        weights_sha256: String::new(),
    };
    save_model(&opts.out, &model, &mut card)?;
    Ok(TrainSummary { counts: set.counts, card })
}

/// Standardises embedding features in place with the mean and standard deviation of the training
/// rows, recording them for inference.
fn standardize_embeddings(set: &mut LabelledSet, train_rows: &[usize], dim: usize, mean: &mut [f64], std: &mut [f64]) {
    let n = train_rows.len().max(1) as f64;
    for k in 0..dim {
        let m = train_rows.iter().map(|&r| set.x[r * dim + k] as f64).sum::<f64>() / n;
        let v = train_rows.iter().map(|&r| (set.x[r * dim + k] as f64 - m).powi(2)).sum::<f64>() / n;
        mean[k] = m;
        std[k] = if v > 0.0 { v.sqrt() } else { 1.0 };
    }
    for (i, x) in set.x.iter_mut().enumerate() {
        let k = i % dim;
        *x = ((*x as f64 - mean[k]) / std[k]) as f32;
    }
}
