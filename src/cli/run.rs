//! `starpipe run [PIPELINE.toml]`: check the whole pipeline, then run its stages in dependency
//! order, skipping tasks whose done-record carries the current key.

use anyhow::Result;
use clap::Args;
use starpipe::artifacts::ShardSpec;
use starpipe::pipeline::executor::{self, BadCommandLine, Commands, Loaded, RunOptions, StageFailure};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline file (pipelines/*.toml). Without one, the built-in demo (pipelines/demo.toml):
    /// mock LAMOST and DESI surveys → ingest → pre-training → transfer strategies → embeddings →
    /// evaluation → inference → catalogue → report, in ./starpipe-demo.
    pipeline: Option<PathBuf>,
    /// Tasks per sharded stage (ingest, embed, infer); default: the pipeline's `shards`. Part of
    /// what a run computes: the same inputs with another shard count give other shard files.
    #[arg(long, value_name = "N", value_parser = crate::cli::args::shard_count)]
    shards: Option<usize>,
    /// Directory the stages' relative paths point into; default: the pipeline's `workdir`.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Run only this stage (repeatable); the stages it reads from must be complete.
    #[arg(long, value_name = "NAME")]
    stage: Vec<String>,
    /// With one sharded --stage: run only its task i of N (what a SLURM array task runs).
    #[arg(long, value_name = "i/N", requires = "stage")]
    shard: Option<ShardSpec>,
    /// Check the pipeline and print what would run, one line per stage; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: one line per task instead of per stage.
    #[arg(long, requires = "dry_run")]
    all: bool,
}

/// The executor's view of this command line: parse (pre-flight) and run one stage command line.
pub struct Cli;

impl Commands for Cli {
    fn check(&self, argv: &[String]) -> std::result::Result<(), BadCommandLine> {
        use clap::error::{ContextKind, ContextValue};
        let Err(e) = crate::cli::parse_command(argv) else { return Ok(()) };
        let arg = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => v.first().cloned(),
            _ => None,
        };
        let flag = arg.as_deref().and_then(|a| a.split_whitespace().next()).and_then(|f| f.strip_prefix("--"));
        let rendered = e.render().to_string();
        let reason =
            rendered.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or("invalid command line").to_string();
        Err(BadCommandLine { reason, flag: flag.map(str::to_string) })
    }

    fn run(&self, argv: &[String]) -> std::result::Result<(), StageFailure> {
        crate::cli::parse_command(argv)
            .map_err(anyhow::Error::from)
            .and_then(crate::cli::dispatch)
            .map_err(|e| StageFailure { record: format!("{e:#}"), message: crate::cli::one_line(&e) })
    }
}

/// Loads a pipeline (or the demo) with every stage's command line checked by this parser.
pub fn load(
    file: Option<&std::path::Path>,
    shards: Option<usize>,
    workdir: Option<&std::path::Path>,
) -> Result<Loaded> {
    Ok(Loaded::load(file, shards, workdir, &Cli)?)
}

pub fn run(a: RunArgs) -> Result<()> {
    let l = load(a.pipeline.as_deref(), a.shards, a.workdir.as_deref())?;
    let opts = RunOptions { stages: a.stage, shard: a.shard, dry_run: a.dry_run, all: a.all };
    Ok(executor::run(&l, &opts, &Cli, &mut std::io::stdout(), &mut std::io::stderr())?)
}
