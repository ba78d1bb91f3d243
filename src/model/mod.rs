//! Stellar-parameter models (arXiv 2602.15021): MLPs on normalised spectra that predict Teff,
//! log g and [Fe/H], each as a Gaussian (mean and log σ), pre-trained on one survey and transferred
//! to another zero-shot, by full fine-tuning, LoRA, or a residual-head adapter.
//!
//! One file per job: `data` (labelled sets from shards), `split` (deterministic
//! train/validation/test membership), `mlp` (the network and its adapters), `loss`, `fit` (the
//! optimisation loop), `calibrate` (σ scaling on validation stars), `card` and `store` (model
//! directories on disk), `train` / `finetune` / `infer` (the commands). Error statistics, OOD,
//! the reconstruction check and resolutions are in [`crate::trust`] below; evaluation,
//! `starpipe calibrate` and repeats in [`crate::validate`] above. What is predicted and label tables live in [`crate::labels`]; weights,
//! AdamW and the device in [`crate::nn`].

pub mod augment;
pub mod calibrate;
pub mod card;
pub mod data;
pub mod finetune;
pub mod fit;
pub mod infer;
pub mod loss;
pub mod mlp;
pub mod predict;
pub mod split;
pub mod store;
pub mod train;

use crate::io::FileError;
use std::path::PathBuf;

pub use crate::labels::{PARAMETERS, Parameter};

/// Everything that can go wrong in the model stages; each names the file it concerns where there
/// is one (a file's failures are `io::FileError`, which every stage shares).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Write(#[from] crate::io::WriteError),
    #[error(transparent)]
    Labels(#[from] crate::labels::LabelError),
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl ModelError {
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::File(FileError::bad(path, reason))
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File(FileError::io(path, source))
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
