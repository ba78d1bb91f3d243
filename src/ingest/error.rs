//! Why an input could not be read. Each becomes a `failed` row in the ingest report; none stops a run.

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    File(#[from] crate::fits::FitsError),
    #[error("not a LAMOST LRS file: primary HDU is not a 5×N image and there is no COADD table")]
    UnknownLamostLayout,
    #[error("missing HDU {0}")]
    MissingHdu(String),
    #[error("missing column {column} in HDU {hdu}")]
    MissingColumn { hdu: String, column: String },
    #[error("redrock file {path}: {reason}")]
    Redrock { path: String, reason: String },
}

impl ReadError {
    pub fn fits(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        crate::fits::FitsError::fits(what, err).into()
    }
    /// A table or image whose shape is not what the survey's files have.
    pub fn shape(message: impl Into<String>) -> Self {
        crate::fits::FitsError::Shape(message.into()).into()
    }
}
