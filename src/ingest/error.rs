//! Why an input could not be read. Each becomes a `failed` row in the ingest report; none stops a run.

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("file not found")]
    NotFound,
    #[error("cannot open as FITS ({gzip}): {message}")]
    Open { gzip: &'static str, message: String },
    #[error("{0}")]
    Truncated(String),
    #[error("not a LAMOST LRS file: primary HDU is not a 5×N image and there is no COADD table")]
    UnknownLamostLayout,
    #[error("missing HDU {0}")]
    MissingHdu(String),
    #[error("missing column {column} in HDU {hdu}")]
    MissingColumn { hdu: String, column: String },
    #[error("wrong shape: {0}")]
    Shape(String),
    #[error("cannot read {what}: {message}")]
    Fits { what: String, message: String },
    #[error("redrock file {path}: {reason}")]
    Redrock { path: String, reason: String },
}

impl ReadError {
    pub fn fits(what: impl Into<String>, err: fitsio::errors::Error) -> Self {
        ReadError::Fits { what: what.into(), message: err.to_string() }
    }
}
