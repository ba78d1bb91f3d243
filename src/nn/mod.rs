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

/// What can go wrong below the networks; a file's failure is `io::FileError` or `io::WriteError`,
/// which name it. The model and encoder errors wrap it whole.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    #[error(transparent)]
    Write(#[from] crate::io::WriteError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl NnError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File(crate::io::FileError::io(path, source))
    }
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::File(crate::io::FileError::bad(path, reason))
    }
}

pub type Result<T, E = NnError> = std::result::Result<T, E>;
