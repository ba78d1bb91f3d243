//! What defines an ingest run (`IngestOptions`, built with `new` and the `with_*` setters) and the
//! errors that stop one (a bad command line or an output that cannot be written; bad inputs never do).

use super::desi::DesiOptions;
use super::discover::{DiscoverError, Survey};
use crate::artifacts::ShardSpec;
use crate::io::WriteError;
use crate::preprocess::PreprocessConfig;
use indicatif::ProgressBar;
use std::path::PathBuf;

/// Everything that defines an ingest run. Build with [`IngestOptions::new`] and the `with_*` setters.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub survey: Survey,
    pub input: PathBuf,
    pub out: PathBuf,
    pub shard: ShardSpec,
    pub threads: Option<usize>,
    /// Spectra per output shard (a shard may exceed it by less than one file's spectra only if one
    /// file alone holds more).
    pub shard_size: usize,
    pub row_group_rows: usize,
    pub preprocess: PreprocessConfig,
    pub desi: DesiOptions,
    pub progress: bool,
    /// The bar to advance (the CLI's, drawn with its log lines); without one, ingest draws its own
    /// when `progress` is on.
    pub bar: Option<ProgressBar>,
}

impl IngestOptions {
    pub fn new(
        survey: Survey,
        input: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
        preprocess: PreprocessConfig,
    ) -> Self {
        Self {
            survey,
            input: input.into(),
            out: out.into(),
            shard: ShardSpec::default(),
            threads: None,
            shard_size: 50_000,
            row_group_rows: 4096,
            preprocess,
            desi: DesiOptions::default(),
            progress: true,
            bar: None,
        }
    }
    pub fn with_shard(mut self, shard: ShardSpec) -> Self {
        self.shard = shard;
        self
    }
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads;
        self
    }
    pub fn with_shard_size(mut self, n: usize) -> Self {
        self.shard_size = n.max(1);
        self
    }
    pub fn with_row_group_rows(mut self, n: usize) -> Self {
        self.row_group_rows = n.max(1);
        self
    }
    pub fn with_desi(mut self, desi: DesiOptions) -> Self {
        self.desi = desi;
        self
    }
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }
    pub fn with_progress_bar(mut self, bar: Option<ProgressBar>) -> Self {
        self.bar = bar;
        self
    }
}

/// Errors that stop a run: a bad command line or an output that cannot be written.
/// Bad inputs never produce one of these.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot create output directory {path}: {source}")]
    OutDir { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} was written by a different ingest (other inputs, settings or starpipe version): \
         fingerprint {found} != {expected}; use a new --out directory or remove this task's spectra-*/report-* files"
    )]
    ForeignShard { path: PathBuf, found: String, expected: String },
    #[error("{path} is not a complete starpipe shard: {reason}; remove it to re-run that shard")]
    BrokenShard { path: PathBuf, reason: String },
    #[error("cannot start {0} worker threads: {1}")]
    Threads(usize, String),
    #[error(
        "{out} holds the output of an ingest split into {found} task(s) ({example}), and this task is one of \
         {expected}: mixing counts would write every spectrum twice. Use --shard i/{found}, another --out, or \
         remove the old spectra-*/report-*/ingest-summary-* files"
    )]
    OtherShardCount { out: PathBuf, found: usize, expected: usize, example: String },
}
