//! The floor `model` and `encoder` both stand on: normalised-spectra and embedding shards read as
//! blocks of features (`read`), and the per-shard stage runner with resume by provenance
//! (`per_shard`). Neither network lives here; both read their inputs through it.

pub mod per_shard;
pub mod read;

/// Shard reading and writing fail only as files do.
pub use crate::io::FileError;

pub type Result<T> = std::result::Result<T, FileError>;
