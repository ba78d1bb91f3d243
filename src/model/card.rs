//! Model and adapter cards: the JSON written beside the weights, recording everything needed to
//! use the model correctly (input window, label scaling, σ calibration) and to reproduce it (data
//! hash, seed, settings), plus its validation metrics. Cards hold no timestamps, so the same
//! inputs and seed give byte-identical model directories.

use super::Result;
use super::fit::{FitConfig, FitReport};
use super::mlp::{LoraConfig, MlpConfig, ResHeadConfig};
use super::split::TestSplit;
use crate::grid::LogGrid;
use crate::labels::LabelSpec;
use crate::trust::metrics::Metrics;
use crate::trust::resolution::{Resolution, training_resolutions};
use serde::{Deserialize, Serialize};

pub const MODEL_FORMAT: &str = "starpipe-model/1";
pub const ADAPTER_FORMAT: &str = "starpipe-adapter/1";

/// Labels are standardised as (x − mean) / std with the pre-training set's statistics; every
/// adapter reuses them (arXiv 2602.15021).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelScaling {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl LabelScaling {
    pub fn fit(rows: &[[f64; 3]]) -> Self {
        let n = rows.len().max(1) as f64;
        let mean = [0, 1, 2].map(|p| rows.iter().map(|r| r[p]).sum::<f64>() / n);
        let std = [0, 1, 2].map(|p| {
            let v = rows.iter().map(|r| (r[p] - mean[p]).powi(2)).sum::<f64>() / n;
            if v > 0.0 { v.sqrt() } else { 1.0 }
        });
        Self { mean, std }
    }

    pub fn standardize(&self, v: &[f64; 3]) -> [f32; 3] {
        [0, 1, 2].map(|p| ((v[p] - self.mean[p]) / self.std[p]) as f32)
    }
}

/// Range of the training labels: predictions outside it are extrapolations, and near its ends
/// (outside the 0.5–99.5 % quantiles) the training set is thin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelRange {
    pub min: [f64; 3],
    pub max: [f64; 3],
    pub p005: [f64; 3],
    pub p995: [f64; 3],
}

impl LabelRange {
    pub fn of(rows: &[[f64; 3]]) -> Self {
        let q =
            |p: usize, at: f64| crate::trust::metrics::quantile(&mut rows.iter().map(|r| r[p]).collect::<Vec<_>>(), at);
        Self {
            min: [0, 1, 2].map(|p| q(p, 0.0)),
            max: [0, 1, 2].map(|p| q(p, 1.0)),
            p005: [0, 1, 2].map(|p| q(p, 0.005)),
            p995: [0, 1, 2].map(|p| q(p, 0.995)),
        }
    }
}

/// What the network reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InputSpec {
    /// Normalised flux on a window of the common grid (`data::pixel_features`).
    Pixels { window: LogGrid },
    /// Encoder embeddings (embedding shards), standardised per dimension with the training set's
    /// mean and standard deviation (as SpecCLIP's downstream heads).
    Embeddings { encoder_sha256: String, dim: usize, mean: Vec<f64>, std: Vec<f64> },
}

impl InputSpec {
    pub fn n_features(&self) -> usize {
        match self {
            InputSpec::Pixels { window } => window.npix,
            InputSpec::Embeddings { dim, .. } => *dim,
        }
    }

    /// The shards this input is read from.
    pub fn shard_kind(&self) -> crate::artifacts::ShardKind {
        match self {
            InputSpec::Pixels { .. } => crate::artifacts::ShardKind::Spectra,
            InputSpec::Embeddings { .. } => crate::artifacts::ShardKind::Embeddings,
        }
    }

    /// 'pixels' or 'embeddings', as in evaluation tables and prediction metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            InputSpec::Pixels { .. } => "pixels",
            InputSpec::Embeddings { .. } => "embeddings",
        }
    }
}

/// Which spectra of the input were used for training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionCuts {
    /// Minimum median S/N on the grid (`snr_grid`).
    pub min_snr: f64,
    /// Maximum catalogue label error per parameter (Teff K, log g dex, [Fe/H] dex; None = no cut);
    /// rows without errors pass.
    pub max_label_error: [Option<f64>; 3],
}

impl Default for SelectionCuts {
    fn default() -> Self {
        Self { min_snr: 0.0, max_label_error: [None; 3] }
    }
}

/// Validation metrics of one parameter, in physical units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterMetrics {
    pub parameter: String,
    pub unit: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Fraction with |Δ| < σ on validation stars that did not set the σ factor
    /// (`calibrate::held_out_coverage`); `within_1sigma` is 0.68 by construction when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_1sigma_held_out: Option<f64>,
}

/// Where labelled training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// Shard files read, as given.
    pub shards: Vec<String>,
    pub label_table: String,
    pub labels: LabelSpec,
    pub selection: SelectionCuts,
    /// The spectral resolutions of the spectra shards read (none for embeddings, and in cards
    /// written before they were recorded): what `infer` and `evaluate` check shards against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolutions: Vec<Resolution>,
}

impl DataSource {
    pub fn new(
        shards: &[std::path::PathBuf],
        labels: &[std::path::PathBuf],
        spec: &LabelSpec,
        cuts: &SelectionCuts,
    ) -> Result<Self> {
        Ok(Self {
            shards: shards.iter().map(|p| p.display().to_string()).collect(),
            // One table as its path; several as their paths joined by ", ".
            label_table: labels.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            labels: spec.clone(),
            selection: cuts.clone(),
            resolutions: training_resolutions(shards)?,
        })
    }
}

/// What a training run read and how it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    #[serde(flatten)]
    pub source: DataSource,
    /// Labelled spectra that passed the cuts.
    pub n_candidates: usize,
    /// Objects (distinct keys) used for training and for validation.
    pub n_train: usize,
    pub n_val: usize,
    /// SHA-256 over the training and validation rows (ids, labels, inputs), in order.
    pub data_sha256: String,
    pub fit: FitConfig,
    pub report: FitReport,
}

/// How the network's σ becomes the reported 1σ error, per parameter: σ = √((scale·σ_net)² +
/// floor²), the floor in physical units (K, dex, dex). The scale absorbs σ the network gets wrong
/// by a factor; the floor, what no network σ knows about (label-scale and emulator systematics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorModel {
    pub scale: [f64; 3],
    pub floor: [f64; 3],
    /// The part of σ that falls as 1/(S/N): σ_snr = snr_term / snr (parameter units × S/N). What
    /// the network's own σ misses of the noise at low S/N (it saw S/N ≥ 20 in training); fitted by
    /// `calibrate`, zero (and absent from the card) when the data do not ask for it.
    #[serde(default, skip_serializing_if = "all_zero")]
    pub snr_term: [f64; 3],
}

fn all_zero(v: &[f64; 3]) -> bool {
    v.iter().all(|x| *x == 0.0)
}

impl ErrorModel {
    /// A scale only (what training and fine-tuning calibrate).
    pub fn scale_only(scale: [f64; 3]) -> Self {
        Self { scale, floor: [0.0; 3], snr_term: [0.0; 3] }
    }

    /// The reported error of parameter `p` for a network σ in physical units and the spectrum's
    /// median S/N per pixel: √((k·σ_net)² + floor² + (snr_term/snr)²). A spectrum without a
    /// finite positive S/N gets no S/N term (it carries BAD_INPUT or LOW_SNR).
    pub fn error(&self, p: usize, sigma_net: f64, snr: f64) -> f64 {
        let scaled = self.scale[p] * sigma_net;
        let noise = if self.snr_term[p] > 0.0 && snr.is_finite() && snr > 0.0 { self.snr_term[p] / snr } else { 0.0 };
        // No floor nor S/N term: exactly the scaled σ (so such cards give the bytes they always gave).
        if self.floor[p] == 0.0 && noise == 0.0 { scaled } else { scaled.hypot(self.floor[p]).hypot(noise) }
    }
}

/// An error model fitted on labelled stars by `starpipe calibrate` (meant for renders of real
/// library stars the emulator never saw), with what it was fitted on and how well it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedErrorModel {
    #[serde(flatten)]
    pub model: ErrorModel,
    #[serde(flatten)]
    pub source: DataSource,
    /// Stars used per parameter (after rejecting |Δ| > 5σ outliers) and rejected, among those
    /// inside the training labels' 0.5–99.5 % range.
    pub n_used: [usize; 3],
    pub n_rejected: [usize; 3],
    /// Labelled stars left out for lying outside that range (the OOD flag is theirs).
    #[serde(default)]
    pub n_outside_training_range: usize,
    /// Fraction of the stars inside the range with |Δ| < σ and < 2σ, with the errors before and after.
    pub coverage_1sigma_before: [f64; 3],
    pub coverage_1sigma: [f64; 3],
    pub coverage_2sigma: [f64; 3],
    /// Coverage at 1σ after calibration per S/N bin (`metrics::SNR_BINS`): the error model is one
    /// for every S/N, so where it holds and where not.
    #[serde(default)]
    pub coverage_by_snr: Vec<crate::trust::metrics::SnrCoverage>,
    /// The OOD threshold these stars set (the 99th percentile of the scores of those inside the
    /// training labels' 0.5–99.5 % range); replaces the training 99.5 % threshold in the
    /// catalogue's OOD flag. None with too few such stars.
    #[serde(default)]
    pub ood_threshold: Option<f64>,
    /// The reconstruction χ² threshold these stars set (99th percentile over the same stars; see
    /// `reconstruction`): above it the catalogue flags OOD. None for embedding models or too few stars.
    #[serde(default)]
    pub chi2_threshold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub starpipe_version: String,
    pub input: InputSpec,
    pub architecture: MlpConfig,
    pub n_parameters: usize,
    /// Output order and units.
    pub parameters: Vec<(String, String)>,
    pub label_scaling: LabelScaling,
    pub label_range: LabelRange,
    /// Factors applied to the network's σ (calibrate.rs), per parameter.
    pub sigma_scale: [f64; 3],
    /// When present (`starpipe calibrate`), replaces `sigma_scale` as the error model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_model: Option<FittedErrorModel>,
    /// Gaussian of the training set's last-hidden-layer features, for out-of-distribution scores.
    pub ood: Option<crate::trust::ood::OodModel>,
    pub training: TrainingRecord,
    pub validation: Vec<ParameterMetrics>,
    /// SHA-256 of `model.safetensors`: the model's identity in adapters and predictions.
    pub weights_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterCard {
    pub format: String,
    pub starpipe_version: String,
    /// zeroshot | full | lora | reshead.
    pub kind: String,
    /// The base model this adapter applies to.
    pub base_model_sha256: String,
    /// SHA-256 of `adapter.safetensors` (None for zero-shot, which has no weights).
    pub weights_sha256: Option<String>,
    pub lora: Option<LoraConfig>,
    pub reshead: Option<ResHeadConfig>,
    pub n_trainable_parameters: usize,
    pub sigma_scale: [f64; 3],
    /// When present (`starpipe calibrate --adapter`), replaces `sigma_scale` as the error model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_model: Option<FittedErrorModel>,
    /// Target-survey stars never used for training (evaluate scores only these).
    pub test_split: TestSplit,
    pub n_train_requested: usize,
    pub training: Option<TrainingRecord>,
    pub validation: Vec<ParameterMetrics>,
}

impl ModelCard {
    /// The errors this model reports: its fitted error model, else its σ factors.
    pub fn errors(&self) -> ErrorModel {
        self.error_model.as_ref().map_or(ErrorModel::scale_only(self.sigma_scale), |m| m.model)
    }
}

impl AdapterCard {
    /// The errors predictions through this adapter report: its fitted error model, else its σ factors.
    pub fn errors(&self) -> ErrorModel {
        self.error_model.as_ref().map_or(ErrorModel::scale_only(self.sigma_scale), |m| m.model)
    }

    /// Row label in evaluation tables: `lora (n=500)`, `zeroshot`.
    pub fn strategy_label(&self) -> String {
        match &self.training {
            Some(t) if self.kind != "zeroshot" => format!("{} (n={})", self.kind, t.n_train + t.n_val),
            _ => self.kind.clone(),
        }
    }
}

/// The resolutions a model with an optional adapter learned from: a trained adapter's (it was
/// fitted to its shards), else the base model's (zero-shot adapters train nothing). With the cards,
/// so that `resolution` (reading shards) and `card` (recording what was read) do not use each other
/// both ways.
pub fn learned_resolutions<'a>(base: &'a ModelCard, adapter: Option<&'a AdapterCard>) -> &'a [Resolution] {
    match adapter.filter(|c| c.n_trainable_parameters > 0).and_then(|c| c.training.as_ref()) {
        Some(t) => &t.source.resolutions,
        None => &base.training.source.resolutions,
    }
}
