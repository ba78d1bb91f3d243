//! The ground floor for files, below every stage: atomic writes, small Parquet tables, column and
//! key-value-metadata readers, and the error type of a failed write.
//!
//! Every file starpipe writes goes through [`write_atomically`] (or one of its wrappers), so "a
//! file under its final name is complete" holds by construction rather than by each stage
//! remembering to rename.

mod atomic;
mod tables;

pub use atomic::{commit, tmp_path, write_atomically, write_atomically_via, write_bytes_atomically};
pub use tables::{read_columns, read_key_value_metadata, write_small_table};

use std::path::PathBuf;

/// A file that could not be read or used, naming it and why: the failures every stage shares.
/// Stage errors wrap it whole (`#[error(transparent)] File(#[from] FileError)`), so a message reads
/// the same whichever stage reports it and no stage repeats these variants.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
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
}

impl FileError {
    pub fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadInput { path: path.into(), reason: reason.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// A write that failed, naming the file. Stage errors convert from it variant by variant, so a
/// message reads the same whichever stage reports it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write Parquet {path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("cannot build Arrow batch for {path}: {source}")]
    Arrow { path: PathBuf, source: arrow::error::ArrowError },
}

impl WriteError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
