//! Pipelines: a TOML file of stages (`pipelines/*.toml`), the order they run in, and the run
//! manifest that lets a re-run skip finished work.
//!
//! - [`spec`] parses and checks the file (every error names the key and its line);
//! - [`plan`] orders the stages by the paths they read and write;
//! - [`manifest`] keeps one done-record per finished task;
//! - [`workspace`] binds a pipeline to a workdir and shard count: task keys and currency.
//!
//! - [`executor`] runs a pipeline on this machine (`starpipe run`), [`slurm`] submits it as job
//!   arrays (`starpipe slurm`). A stage is exactly the `starpipe` command its table spells out,
//!   run with the workdir as current directory; the binary parses and dispatches it.

pub mod executor;
pub mod manifest;
pub mod outputs;
pub mod plan;
pub mod slurm;
pub mod spec;
pub mod workspace;

pub use manifest::{DoneRecord, FailedRecord, Manifest, OutputFile, Task};
pub use plan::Plan;
pub use spec::{Param, Pipeline, Scalar, Stage, StageCommand};
pub use workspace::Workspace;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read pipeline file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{source_name}:{line}: {}{reason}", if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
    Invalid { source_name: String, line: usize, key: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] crate::io::WriteError),
    #[error(
        "{workdir} was run with {earlier} shard(s) per sharded stage, not {now}: shard files are named after their \
         task, so mixing counts would duplicate spectra; use --shards {earlier}, or a new --workdir"
    )]
    ShardCount { workdir: PathBuf, earlier: usize, now: usize },
    /// A request that cannot be run as asked (flags that do not fit the pipeline, missing inputs).
    #[error("{0}")]
    Usage(String),
    #[error("stage {task} failed (starpipe {command}): {message}")]
    StageFailed { task: String, command: String, message: String },
}

/// The built-in demo pipeline (`starpipe run` with no file).
pub const DEMO: &str = include_str!("../../pipelines/demo.toml");
