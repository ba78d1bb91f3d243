//! `starpipe slurm submit|status|resubmit`: flags → `pipeline::slurm` (scripts, arrays,
//! dependencies, the submission table, states).

use anyhow::Result;
use clap::{Args, Subcommand};
use starpipe::pipeline::executor::Loaded;
use starpipe::pipeline::slurm;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum SlurmCommand {
    /// Write the sbatch scripts and submit them: job arrays over the shards of the per-file
    /// stages, dependent jobs for the others. Tasks already done are not submitted.
    Submit(SubmitArgs),
    /// Per stage and shard: done, pending, running, failed (with the error), cancelled, or not
    /// submitted; with the job id and log file. "done" means a done-record for the task's current
    /// command line; whether inputs changed since is `submit --dry-run`'s question.
    Status(StatusArgs),
    /// Submit again only the tasks that are not done (failed, cancelled or missing), once none of
    /// the pipeline's jobs is still queued.
    Resubmit(SubmitArgs),
}

#[derive(Args, Debug)]
pub struct Target {
    /// Pipeline file (pipelines/*.toml).
    pipeline: PathBuf,
    /// Tasks per sharded stage (array size); default: the pipeline's `shards`.
    #[arg(long, value_name = "N", value_parser = crate::cli::args::shard_count)]
    shards: Option<usize>,
    /// Directory the stages' relative paths point into; default: the pipeline's `workdir`.
    #[arg(long)]
    workdir: Option<PathBuf>,
}

impl Target {
    /// The same target as command-line arguments, for the hints we print.
    fn command_line_args(&self) -> String {
        let mut s = self.pipeline.display().to_string();
        if let Some(n) = self.shards {
            s += &format!(" --shards {n}");
        }
        if let Some(w) = &self.workdir {
            s += &format!(" --workdir {}", w.display());
        }
        s
    }
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    target: Target,
    /// Print the scripts and sbatch command lines; submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// At most this many tasks of an array run at once (sbatch --array=…%K), to spare the
    /// shared filesystem.
    #[arg(long, value_name = "K", value_parser = crate::cli::args::at_least_one)]
    max_running: Option<usize>,
    /// sbatch options for every job, after starpipe's own (e.g. --partition=debug
    /// --time=02:00:00); a `--` before them is optional.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "SBATCH OPTIONS")]
    sbatch: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// List every task, done ones included (by default: one line per stage, then the tasks that
    /// are not done).
    #[arg(long)]
    all: bool,
}

pub fn slurm(c: SlurmCommand) -> Result<()> {
    let (out, err) = (&mut std::io::stdout(), &mut std::io::stderr());
    match c {
        SlurmCommand::Submit(a) => submit(a, false, out, err),
        SlurmCommand::Resubmit(a) => submit(a, true, out, err),
        SlurmCommand::Status(a) => Ok(slurm::status(&load(&a.target)?, a.all, out, err)?),
    }
}

fn submit(a: SubmitArgs, resubmit: bool, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let l = load(&a.target)?;
    let opts = slurm::SubmitOptions {
        dry_run: a.dry_run,
        max_running: a.max_running,
        sbatch: a.sbatch,
        target_args: a.target.command_line_args(),
    };
    Ok(slurm::submit(&l, &opts, resubmit, out, err)?)
}

fn load(t: &Target) -> Result<Loaded> {
    crate::cli::run::load(Some(&t.pipeline), t.shards, t.workdir.as_deref())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sbatch_options_follow_ours_with_or_without_a_separator() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            c: super::SlurmCommand,
        }
        for argv in [
            &["t", "submit", "p.toml", "--shards", "4", "--partition=debug", "--time", "01:00:00"][..],
            &["t", "submit", "p.toml", "--shards", "4", "--", "--partition=debug", "--time", "01:00:00"][..],
        ] {
            let super::SlurmCommand::Submit(a) = T::try_parse_from(argv).unwrap().c else { panic!() };
            assert_eq!(a.target.shards, Some(4));
            assert_eq!(a.sbatch, ["--partition=debug", "--time", "01:00:00"]);
        }
    }
}
