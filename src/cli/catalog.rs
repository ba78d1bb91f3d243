//! Command-line front end of `starpipe catalog`.

use anyhow::{Result, bail};
use clap::Args;
use starpipe::catalog::flags::Thresholds;
use starpipe::catalog::{CatalogOptions, Format, run_catalog};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Normalised-spectra shards or directories (the spectra the predictions were made for).
    #[arg(long, required = true, num_args = 1..)]
    spectra: Vec<PathBuf>,
    /// Prediction directories from `starpipe infer`, one per head (model + adapter); each adds
    /// one row per spectrum.
    #[arg(long, required = true, num_args = 1..)]
    predictions: Vec<PathBuf>,
    /// Output: a .parquet file (--format parquet), a .fits file (--format fits) or a directory
    /// (--format hats).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// parquet: one file, sorted by _healpix_29 in memory (small runs); hats: a HATS directory,
    /// memory bounded by one partition (any size); fits: a FITS binary table with units for
    /// TOPCAT (small runs).
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    format: Format,
    /// Write the per-star table (schemas/catalog_stars.toml) instead: one row per star (DESI
    /// TARGETID, LAMOST designation) and head, the inverse-variance mean of its good spectra with
    /// its error, the scatter between them, the number used, combined flags and the best spectrum.
    #[arg(long)]
    per_star: bool,
    /// HATS: most rows per partition.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_rows: u64,
    /// HATS: the margin cache's threshold in arcseconds (hats-import's convention, for LSDB
    /// cross-matches at partition edges), written beside the catalogue as <out>_<N>arcs; 0 for none.
    #[arg(long, default_value_t = starpipe::catalog::margin::DEFAULT_THRESHOLD_ARCSEC, value_parser = crate::cli::args::non_negative)]
    margin_threshold: f64,
    /// HATS: obs_collection name.
    #[arg(long, default_value = "starpipe_catalog")]
    collection: String,
    /// LOW_SNR below this median S/N per pixel.
    #[arg(long, default_value_t = Thresholds::default().min_snr)]
    min_snr: f64,
    /// Flag HIGH_MASK_FRAC above this fraction of unusable grid pixels (a quality flag; ingest's
    /// --max-masked-fraction is the other, looser limit above which a spectrum is not written at all).
    #[arg(long, default_value_t = Thresholds::default().high_mask_fraction, value_parser = crate::cli::args::fraction)]
    high_mask_fraction: f64,
    /// LARGE_ERR above these errors: Teff (K), log g (dex), [Fe/H] (dex).
    #[arg(long, value_delimiter = ',', default_value = "300,0.5,0.3")]
    max_error: Vec<f64>,
    /// NOT_STAR above this |radial velocity| (km/s).
    #[arg(long, default_value_t = Thresholds::default().max_abs_rv_kms)]
    max_abs_rv: f64,
    /// RV_UNCERTAIN above this radial-velocity error (km/s).
    #[arg(long, default_value_t = Thresholds::default().max_rv_err_kms, value_parser = crate::cli::args::non_negative)]
    max_rv_err: f64,
    /// HEAD_DISAGREE when a pixel and an embedding head differ by more than this many combined σ
    /// (√(σ₁² + σ₂²)) in any parameter.
    #[arg(long, default_value_t = Thresholds::default().disagree_sigma, value_parser = crate::cli::args::positive)]
    disagree_sigma: f64,
}

fn opts_margin(threshold: f64) -> Option<f64> {
    (threshold > 0.0).then_some(threshold)
}

pub fn catalog(a: CatalogArgs) -> Result<()> {
    if a.max_error.len() != 3 {
        bail!("--max-error takes three values: Teff (K), log g (dex), [Fe/H] (dex)");
    }
    let mut opts = CatalogOptions::new(a.spectra, a.predictions, a.out.clone(), a.format);
    opts.max_rows = a.max_rows;
    opts.collection = a.collection;
    opts.per_star = a.per_star;
    opts.margin_arcsec = opts_margin(a.margin_threshold);
    opts.thresholds.min_snr = a.min_snr;
    opts.thresholds.high_mask_fraction = a.high_mask_fraction;
    opts.thresholds.disagree_sigma = a.disagree_sigma;
    opts.thresholds.max_error = [a.max_error[0], a.max_error[1], a.max_error[2]];
    opts.thresholds.max_abs_rv_kms = a.max_abs_rv;
    opts.thresholds.max_rv_err_kms = a.max_rv_err;
    let s = run_catalog(&opts)?;
    if a.per_star {
        println!(
            "catalog --per-star: {} star rows from {} spectrum rows ({} success) in {} partition(s): {}",
            s.written,
            s.rows,
            s.success,
            s.partitions,
            a.out.display()
        );
    } else {
        println!(
            "catalog: {} rows ({} success) in {} partition(s): {}",
            s.rows,
            s.success,
            s.partitions,
            a.out.display()
        );
    }
    // Every flag that is set, the most frequent included, then what each published cut keeps.
    println!("  rows written per flag ({}, bit, class):", starpipe::catalog::flags::COLUMN);
    for (flag, n) in s.flag_counts.iter().filter(|(_, n)| *n > 0) {
        println!("  {n:>9}  {:<17} bit {:>2}  {}", flag.name(), flag.bit(), flag.class().name());
    }
    for (cut, n) in &s.cut_counts {
        println!("  {n:>9}  pass the {} cut ({}): {}", cut.name, cut.sql(), cut.keeps);
    }
    if let (Format::Hats, Some(rows), Some(arcsec)) = (a.format, s.margin_rows, opts_margin(a.margin_threshold)) {
        println!(
            "  margin cache ({arcsec}″, for LSDB cross-matches at partition edges): {rows} rows in {}",
            starpipe::catalog::margin::margin_dir(&a.out, arcsec).display()
        );
    }
    if a.format == Format::Fits {
        println!(
            "  try: python3 -c \"from astropy.table import Table; t = Table.read('{}', hdu='CATALOG'); \
             print(len(t), t['success'].sum()); print(Table.read('{}', hdu='FLAG_BITS'))\"",
            a.out.display(),
            a.out.display()
        );
    } else {
        println!(
            "  try: python3 -c \"import duckdb; duckdb.sql(\\\"SELECT count(*), count(*) FILTER (success) FROM '{}{}'\\\").show()\"",
            a.out.display(),
            if a.format == Format::Hats { "/dataset/**/*.parquet" } else { "" }
        );
    }
    Ok(())
}
