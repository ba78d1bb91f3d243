//! Stellar-parameter models (arXiv 2602.15021): MLPs on normalised spectra that predict Teff,
//! log g and [Fe/H], each as a Gaussian (mean and log σ), pre-trained on one survey and transferred
//! to another zero-shot, by full fine-tuning, LoRA, or a residual-head adapter.
//!
//! One file per job: `data` (shards → feature matrices), `split` (deterministic
//! train/validation/test membership), `mlp` (the network and its adapters), `loss`, `fit` (the
//! optimisation loop), `calibrate` (σ scaling), `card` and `store` (model directories on disk),
//! `train` / `finetune` / `evaluate` / `infer` (the four commands), `metrics` (bias, scatter,
//! bootstrap intervals). What is predicted and label tables live in [`crate::labels`]; weights,
//! AdamW and the device in [`crate::nn`].

pub mod augment;
pub mod calibrate;
pub mod card;
pub mod data;
pub mod error_model;
pub mod evaluate;
pub mod finetune;
pub mod fit;
pub mod infer;
pub mod loss;
pub mod metrics;
pub mod mlp;
pub mod ood;
pub mod per_shard;
pub mod predict;
pub mod reconstruction;
pub mod repeats;
pub mod resolution;
pub mod split;
pub mod store;
pub mod train;

use std::path::PathBuf;

pub use crate::labels::{PARAMETERS, Parameter};

/// Everything that can go wrong in the model stages; each variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("{path}: {source}")]
    Arrow { path: PathBuf, source: arrow::error::ArrowError },
    #[error("{path}: {reason}")]
    BadInput { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::io::WriteError> for ModelError {
    fn from(e: crate::io::WriteError) -> Self {
        use crate::io::WriteError as W;
        match e {
            W::Io { path, source } => Self::Io { path, source },
            W::Parquet { path, source } => Self::Parquet { path, source },
            W::Arrow { path, source } => Self::Arrow { path, source },
        }
    }
}

impl From<crate::artifacts::discover::DiscoverError> for ModelError {
    fn from(e: crate::artifacts::discover::DiscoverError) -> Self {
        use crate::artifacts::discover::DiscoverError as D;
        match e {
            D::Io { path, source } => Self::Io { path, source },
            D::BadInput { path, reason } => Self::BadInput { path, reason },
            other @ D::NoModelInput(_) => Self::Invalid(other.to_string()),
        }
    }
}

impl From<crate::labels::LabelError> for ModelError {
    fn from(e: crate::labels::LabelError) -> Self {
        use crate::labels::LabelError as L;
        match e {
            L::Io { path, source } => Self::Io { path, source },
            L::Parquet { path, source } => Self::Parquet { path, source },
            L::Arrow { path, source } => Self::Arrow { path, source },
            L::BadInput { path, reason } => Self::BadInput { path, reason },
            L::Invalid(m) => Self::Invalid(m),
        }
    }
}

impl From<crate::nn::NnError> for ModelError {
    fn from(e: crate::nn::NnError) -> Self {
        use crate::nn::NnError as N;
        match e {
            N::Io { path, source } => Self::Io { path, source },
            N::Json { path, source } => Self::Json { path, source },
            N::BadInput { path, reason } => Self::BadInput { path, reason },
            N::Candle(e) => Self::Candle(e),
            N::Invalid(m) => Self::Invalid(m),
        }
    }
}

impl ModelError {
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadInput { path: path.into(), reason: reason.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
