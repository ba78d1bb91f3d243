//! FITS files in and out, knowing no survey: opening a file tolerantly (gzip sniffed, declared sizes
//! checked against the bytes before cfitsio allocates anything, truncation caught), headers with
//! optional keys and survey sentinels, direct cfitsio calls and raw image rows for the per-file hot
//! path; and, for the mocks, header cards from templates and small files assembled in memory.
//!
//! - [`file`]: `open_fits`, `read_checked`, [`file::FitsHeader`], HDU shapes and column names;
//! - [`sizes`]: declared sizes against the file's length;
//! - [`cfitsio`], [`raw_image`]: the fast read paths;
//! - [`cards`], [`bytes`]: writing (header cards; a 5-row image or one-row table file as bytes).

pub mod bytes;
pub mod cards;
pub mod cfitsio;
pub mod file;
pub mod raw_image;
pub mod sizes;

/// Why a FITS file could not be opened or read, whatever survey wrote it. Ingest's `ReadError`
/// wraps it whole.
#[derive(Debug, thiserror::Error)]
pub enum FitsError {
    #[error("file not found")]
    NotFound,
    #[error("cannot open as FITS ({gzip}): {message}")]
    Open { gzip: &'static str, message: String },
    #[error("{0}")]
    Truncated(String),
    #[error("wrong shape: {0}")]
    Shape(String),
    #[error("cannot read {what}: {message}")]
    Fits { what: String, message: String },
}

impl FitsError {
    /// What could not be read, and cfitsio's (or the reader's) reason.
    pub fn fits(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        FitsError::Fits { what: what.into(), message: err.to_string() }
    }
}
