//! `starpipe report`.

use anyhow::Result;
use clap::Args;
use starpipe::report::{ReportOptions, write_report};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// An `evaluate` output directory (evaluation.parquet, evaluation-predictions.parquet).
    #[arg(long)]
    evaluation: Option<PathBuf>,
    /// A catalogue: a Parquet file or a HATS directory.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Ingest output directories, for the inputs written, skipped and failed by reason.
    #[arg(long, num_args = 1..)]
    spectra: Vec<PathBuf>,
    /// Catalogue head to plot, as in the catalogue's `head` column, MODEL/ADAPTER (e.g.
    /// "mlp_embedding/zeroshot"; default: the catalogue's default head, `is_default_head`).
    #[arg(long)]
    head: Option<String>,
    /// Output directory: index.html and the PNG figures.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let opts =
        ReportOptions { evaluation: a.evaluation, catalog: a.catalog, spectra: a.spectra, head: a.head, out: a.out };
    let s = write_report(&opts)?;
    println!("report: {} ({} figures)", s.html.display(), s.images.len());
    Ok(())
}
