//! A SpecCLIP-style transformer encoder of normalised spectra (SpecCLIP, as arXiv 2602.15021 uses it), trained here by
//! masked-token reconstruction since SpecCLIP's weights cannot be downloaded: `tokens` (the
//! token layout and token tensors), `network` (the encoder), `card` (what an encoder directory
//! records, and its description), `store` (the directory on disk), `pairs` (cross-survey pairs for
//! the contrastive term), `checkpoint` (resume after a kill), `train` (`starpipe train-encoder`:
//! the loop), `embed` (`starpipe embed`, embedding shards). It reads shards through `crate::shards`, the floor it
//! shares with `model`, and uses nothing of `model`.

pub mod card;
mod checkpoint;
pub mod embed;
pub mod network;
mod pairs;
pub mod store;
pub mod tokens;
pub mod train;

use std::path::PathBuf;

/// Everything that can go wrong training an encoder or embedding spectra; each names the file it
/// concerns where there is one.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    #[error(transparent)]
    Write(#[from] crate::io::WriteError),
    #[error(transparent)]
    Labels(#[from] crate::labels::LabelError),
}

impl EncoderError {
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::File(crate::io::FileError::bad(path, reason))
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File(crate::io::FileError::io(path, source))
    }
}

pub type Result<T> = std::result::Result<T, EncoderError>;
