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
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::io::WriteError> for ModelError {
    fn from(e: crate::io::WriteError) -> Self {
        use crate::io::WriteError as W;
        match e {
            W::Io { path, source } => FileError::Io { path, source }.into(),
            W::Parquet { path, source } => FileError::Parquet { path, source }.into(),
            W::Arrow { path, source } => FileError::Arrow { path, source }.into(),
        }
    }
}

impl From<crate::artifacts::discover::DiscoverError> for ModelError {
    fn from(e: crate::artifacts::discover::DiscoverError) -> Self {
        use crate::artifacts::discover::DiscoverError as D;
        match e {
            D::Io { path, source } => FileError::Io { path, source }.into(),
            D::BadInput { path, reason } => FileError::BadInput { path, reason }.into(),
            other @ D::NoModelInput(_) => Self::Invalid(other.to_string()),
        }
    }
}

impl From<crate::labels::LabelError> for ModelError {
    fn from(e: crate::labels::LabelError) -> Self {
        use crate::labels::LabelError as L;
        match e {
            L::File(e) => e.into(),
            L::Invalid(m) => Self::Invalid(m),
        }
    }
}

impl From<crate::nn::NnError> for ModelError {
    fn from(e: crate::nn::NnError) -> Self {
        use crate::nn::NnError as N;
        match e {
            N::Io { path, source } => FileError::Io { path, source }.into(),
            N::Json { path, source } => FileError::Json { path, source }.into(),
            N::BadInput { path, reason } => FileError::BadInput { path, reason }.into(),
            N::Candle(e) => Self::Candle(e),
            N::Invalid(m) => Self::Invalid(m),
        }
    }
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
