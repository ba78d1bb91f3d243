//! `starpipe ingest`: survey FITS files → normalised-spectra Parquet shards + an ingest report.
//!
//! - [`discover`]: which files, and this task's share of them;
//! - [`lamost`], [`desi`] (+ [`select`]): survey readers, each returning a [`record::FileOutcome`];
//! - [`shards`]: Parquet writing with atomic renames;
//! - [`run`]: orchestration, resume and accounting.

mod cfitsio;
pub mod desi;
pub mod discover;
pub mod error;
pub mod fits_header;
pub mod fits_sizes;
pub mod lamost;
mod raw_image;
pub mod record;
pub mod run;
pub mod select;
pub mod shards;

pub use discover::Survey;
pub use run::{IngestError, IngestOptions, IngestSummary, run_ingest};
