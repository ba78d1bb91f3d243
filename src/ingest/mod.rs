//! `starpipe ingest`: survey FITS files → normalised-spectra Parquet shards + an ingest report.
//!
//! - [`discover`]: which files, and this task's share of them;
//! - [`lamost`], [`desi`] (+ [`select`]): survey readers, each returning a [`record::FileOutcome`];
//! - [`shards`]: Parquet writing with atomic renames;
//! - [`run`]: orchestration, with `options`, `resume` (fingerprints, the first unfinished shard),
//!   `sink` (shards in input order) and `summary` (accounting) beside it.

pub mod desi;
pub mod discover;
pub mod error;
pub mod lamost;
mod options;
pub mod record;
mod resume;
pub mod run;
pub mod select;
pub mod shards;
mod sink;
mod summary;

pub use discover::Survey;
pub use options::{IngestError, IngestOptions};
pub use run::run_ingest;
pub use summary::{Counts, IngestSummary};
