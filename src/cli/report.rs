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
    /// Draw this spectrum (a `spectrum_id` of the catalogue; repeatable) with the emulator at its
    /// predicted labels, the residuals, masked pixels, its labels, errors and flag names. Needs
    /// --catalog and the ingest directories holding it in --spectra.
    #[arg(long, value_name = "SPECTRUM_ID", requires_all = ["catalog", "spectra"])]
    star: Vec<String>,
    /// With --star: the head's pixel model directory, whose window the reconstruction uses (default:
    /// SpecCLIP's 3999–5599 Å, every shipped model's).
    #[arg(long, requires = "star")]
    model: Option<PathBuf>,
    /// Output directory: index.html and the PNG figures.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

pub fn report(a: ReportArgs) -> Result<()> {
    // The head's window, from its model card (the report reads no model itself).
    let star_window = a.model.as_deref().map(starpipe::model::store::model_window).transpose()?;
    let opts = ReportOptions {
        evaluation: a.evaluation,
        catalog: a.catalog,
        spectra: a.spectra,
        head: a.head,
        stars: a.star,
        star_window,
        out: a.out,
    };
    let s = write_report(&opts)?;
    println!("report: {} ({} figures)", s.html.display(), s.images.len());
    Ok(())
}
