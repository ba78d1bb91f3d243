//! The encoder card: what an encoder directory records about the encoder (architecture, data,
//! objective, losses per epoch) and the pre-training settings, with the one-line description
//! `evaluate` prints.

use super::network::EncoderConfig;
use super::tokens::TokenLayout;
use crate::grid::LogGrid;
use crate::nn::precision::Precision;
use serde::{Deserialize, Serialize};

pub const ENCODER_FORMAT: &str = "starpipe-encoder/1";
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
