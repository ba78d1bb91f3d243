//! `starpipe slurm submit|status|resubmit`.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum SlurmCommand {}

pub fn slurm(c: SlurmCommand) -> Result<()> {
    match c {}
}
