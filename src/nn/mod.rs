//! The neural-network ground floor shared by the MLP (`model`) and the encoder (`encoder`): named
//! weight sets ([`params`]), AdamW with its state exposed ([`adamw`]), the compute device
//! ([`device`]), inference precision ([`precision`]), weights and cards on disk ([`weights`]), host
//! matrices → tensors ([`tensors`]), network-only speed ([`throughput`]).
//! Nothing here knows what a network predicts.

pub mod adamw;
pub mod device;
pub mod params;
pub mod precision;
pub mod tensors;
pub mod throughput;
pub mod weights;

use std::path::PathBuf;

/// What can go wrong below the networks; each variant that concerns a file names it. The model
/// and encoder errors convert from it variant by variant, so messages read the same.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {reason}")]
    BadInput { path: PathBuf, reason: String },
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl NnError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadInput { path: path.into(), reason: reason.into() }
    }
}

impl From<crate::io::WriteError> for NnError {
    fn from(e: crate::io::WriteError) -> Self {
        use crate::io::WriteError as W;
        match e {
            W::Io { path, source } => Self::Io { path, source },
            W::Parquet { path, source } => Self::BadInput { path, reason: source.to_string() },
            W::Arrow { path, source } => Self::BadInput { path, reason: source.to_string() },
        }
    }
}

pub type Result<T, E = NnError> = std::result::Result<T, E>;
