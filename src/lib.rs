//! starpipe: survey spectra → normalised spectra → stellar parameters → catalogs.
//!
//! See ARCHITECTURE.md for the codemap and the invariants between stages.

pub mod artifacts;
pub mod catalog;
pub mod encoder;
pub mod fits;
pub mod fuzz;
pub mod grid;
pub mod ingest;
pub mod io;
pub mod labels;
pub mod mock;
pub mod model;
pub mod nn;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod report;
pub mod schema;
pub mod shards;
pub mod spectrum;
pub mod trust;
pub mod validate;

/// The starpipe version written into every output's metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
