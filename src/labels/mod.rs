//! Stellar labels, a ground floor under the models and the mocks: the parameters starpipe predicts
//! ([`parameters`]: Teff, log g, [Fe/H], their units and outlier thresholds) and label tables read
//! from Parquet or CSV ([`table`]).

pub mod parameters;
pub mod table;

pub use parameters::{PARAMETERS, Parameter};
pub use table::{LabelSpec, LabelTable, Labels, read_label_tables, read_labels, read_table};

use std::path::PathBuf;

/// Why a label table cannot be read; each variant that concerns a file names it. The model error
/// converts from it variant by variant, so messages read the same.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("{path}: {source}")]
    Arrow { path: PathBuf, source: arrow::error::ArrowError },
    #[error("{path}: {reason}")]
    BadInput { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl LabelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadInput { path: path.into(), reason: reason.into() }
    }
}

pub type Result<T, E = LabelError> = std::result::Result<T, E>;
