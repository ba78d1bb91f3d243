//! `starpipe report`.

use anyhow::Result;
use clap::Args;
use starpipe::report::data::Catalog;
use starpipe::report::stars::StarSpectrum;
use starpipe::report::{ReportOptions, write_report};
use starpipe::trust::reconstruction::reconstruct_spectra;
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
    let stars = match &a.catalog {
        Some(catalog) if !a.star.is_empty() => star_spectra(catalog, &a)?,
        _ => Vec::new(),
    };
    let opts = ReportOptions {
        evaluation: a.evaluation,
        catalog: a.catalog,
        spectra: a.spectra,
        head: a.head,
        stars,
        out: a.out,
    };
    let s = write_report(&opts)?;
    println!("report: {} ({} figures)", s.html.display(), s.images.len());
    Ok(())
}

/// The --star spectra reconstructed at the catalogue's labels (the report draws, the model
/// reconstructs: this joins the two).
fn star_spectra(catalog: &std::path::Path, a: &ReportArgs) -> Result<Vec<StarSpectrum>> {
    use starpipe::grid::{GridPreset, LogGrid};
    let c = Catalog::read(catalog, a.head.as_deref())?;
    let wanted = c.labels_of(catalog, &a.star)?;
    let window = match &a.model {
        Some(dir) => starpipe::model::store::model_window(dir)?,
        None => LogGrid::preset(GridPreset::Specclip),
    };
    let shards = starpipe::artifacts::discover::shard_paths(&a.spectra, starpipe::artifacts::ShardKind::Spectra)?;
    let found = reconstruct_spectra(&shards, &window, &wanted)?;
    a.star
        .iter()
        .map(|id| {
            let r = found.iter().find(|r| &r.spectrum_id == id).ok_or_else(|| {
                anyhow::anyhow!("spectrum '{id}' is in the catalogue but in none of the --spectra directories")
            })?;
            Ok(StarSpectrum {
                spectrum_id: r.spectrum_id.clone(),
                survey: r.survey.clone(),
                wave: r.wave.clone(),
                flux: r.flux.clone(),
                ivar: r.ivar.clone(),
                model: r.fit.as_ref().map(|f| f.model.clone()),
                sigma: r.fit.as_ref().map(|f| f.sigma.clone()),
                chi2_red: r.fit.as_ref().map_or(f64::NAN, |f| f.chi2_red),
            })
        })
        .collect()
}
