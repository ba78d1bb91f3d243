//! Stellar labels, a ground floor under the models and the mocks: the parameters starpipe predicts
//! ([`parameters`]: Teff, log g, [Fe/H], their units and outlier thresholds) and label tables read
//! from Parquet or CSV ([`table`]).

pub mod parameters;
pub mod table;

pub use parameters::{PARAMETERS, Parameter};
pub use table::{LabelSpec, LabelTable, Labels, read_label_tables, read_labels, read_table};

use std::path::PathBuf;

/// Why a label table cannot be read: a file's failure (`io::FileError`, naming it) or a bad
/// request.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    #[error("{0}")]
    Invalid(String),
}

impl LabelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File(crate::io::FileError::io(path, source))
    }
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::File(crate::io::FileError::bad(path, reason))
    }
}

pub type Result<T, E = LabelError> = std::result::Result<T, E>;
