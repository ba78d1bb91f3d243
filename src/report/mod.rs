//! `starpipe report`: figures and one HTML page from the evaluation, the catalogue and the ingest
//! reports of a run. Every input is optional; the page says what it was made from.

pub mod data;
pub mod plots;
pub mod stars;

use crate::catalog::flags;
use crate::schema::columns::evaluation_metrics as em;
use data::{Catalog, Evaluation, IngestAccounting, PARAMETERS};
use plots::Panel;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot draw {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    #[error(transparent)]
    Write(#[from] crate::io::WriteError),
    #[error("nothing to report: give --evaluation, --catalog or --spectra")]
    Empty,
}

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// An `evaluate` output directory.
    pub evaluation: Option<PathBuf>,
    /// A catalogue file or HATS directory.
    pub catalog: Option<PathBuf>,
    /// Ingest output directories (their report-*.parquet parts).
    pub spectra: Vec<PathBuf>,
    /// The catalogue head to plot, as `model + adapter` (default: the first pixel head).
    pub head: Option<String>,
    /// Spectra (`spectrum_id`s of the catalogue's head) to draw with their reconstruction at the
    /// catalogue's labels; found in `spectra` (needs the catalogue).
    pub stars: Vec<String>,
    /// The model window the reconstruction uses (the head's; `infer` computed `chi2_red` on it).
    pub star_window: Option<crate::grid::LogGrid>,
    pub out: PathBuf,
}

/// The files written.
#[derive(Debug, Default)]
pub struct ReportSummary {
    pub html: PathBuf,
    pub images: Vec<PathBuf>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}\
td,th{border:1px solid #ccc;padding:2px 7px;text-align:right}th{background:#eee}\
td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}";

pub fn write_report(opts: &ReportOptions) -> Result<ReportSummary, ReportError> {
    if opts.evaluation.is_none() && opts.catalog.is_none() && opts.spectra.is_empty() {
        return Err(ReportError::Empty);
    }
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| crate::io::FileError::io(out.clone(), e))?;
    let mut summary = ReportSummary::default();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>starpipe report</title><style>{STYLE}</style></head><body>\n\
         <h1>starpipe report</h1>\n<p>starpipe {}.",
        crate::VERSION
    );
    for (what, p) in [("Evaluation", &opts.evaluation), ("Catalogue", &opts.catalog)] {
        if let Some(p) = p {
            let _ = write!(html, " {what}: <code>{}</code>.", escape(&p.display().to_string()));
        }
    }
    html.push_str("</p>\n<p>");
    let sections = [
        (opts.evaluation.is_some(), "evaluation", "Evaluation"),
        (opts.catalog.is_some(), "catalogue", "Catalogue"),
        (!opts.stars.is_empty(), "stars", "Chosen spectra"),
        (!opts.spectra.is_empty(), "ingest", "Ingest"),
    ];
    let links: Vec<String> =
        sections.iter().filter(|s| s.0).map(|(_, id, title)| format!("<a href=\"#{id}\">{title}</a>")).collect();
    html.push_str(&links.join(" · "));
    html.push_str("</p>\n");

    if let Some(dir) = &opts.evaluation {
        let e = Evaluation::read(dir)?;
        evaluation_section(&e, out, &mut html, &mut summary)?;
    }
    if let Some(path) = &opts.catalog {
        let c = Catalog::read(path, opts.head.as_deref())?;
        catalog_section(&c, out, &mut html, &mut summary)?;
        if !opts.stars.is_empty() {
            let window =
                opts.star_window.unwrap_or_else(|| crate::grid::LogGrid::preset(crate::grid::GridPreset::Specclip));
            let found = stars::reconstruct(&c, path, &opts.spectra, &opts.stars, &window)?;
            stars::stars_section(&c, &found, out, &mut html, &mut summary)?;
        }
    }
    if !opts.spectra.is_empty() {
        html.push_str("<h2 id=\"ingest\">Ingest: every input accounted for</h2>\n");
        for dir in &opts.spectra {
            ingest_section(&IngestAccounting::read(dir)?, &mut html);
        }
    }
    html.push_str("</body></html>\n");
    let index = out.join("index.html");
    crate::io::write_bytes_atomically(&index, html.as_bytes())?;
    summary.html = index;
    Ok(summary)
}

fn image(html: &mut String, summary: &mut ReportSummary, path: PathBuf, alt: &str) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    let _ = writeln!(html, "<p><img src=\"{name}\" alt=\"{}\"></p>", escape(alt));
    summary.images.push(path);
}

fn evaluation_section(
    e: &Evaluation,
    out: &Path,
    html: &mut String,
    summary: &mut ReportSummary,
) -> Result<(), ReportError> {
    html.push_str("<h2 id=\"evaluation\">Evaluation on held-out stars</h2>\n");
    if e.groups.is_empty() {
        html.push_str("<p>The evaluation has no scored stars.</p>\n");
        return Ok(());
    }
    // One row of panels per input/strategy, one column per parameter, shared ranges per column.
    let ranges: Vec<(f64, f64)> = (0..3)
        .map(|k| match k {
            0 => (3500.0, 8500.0),
            1 => (-0.5, 5.5),
            _ => (-3.0, 1.0),
        })
        .collect();
    let mut versus = Vec::new();
    let mut residuals = Vec::new();
    for (name, stars) in &e.groups {
        for (k, (param, label)) in PARAMETERS.iter().enumerate() {
            let points: Vec<(f64, f64)> = stars.iter().map(|s| (s.reference[k], s.predicted[k])).collect();
            versus.push(Panel {
                title: format!("{name}: {param}"),
                x_label: format!("reference {label}"),
                y_label: format!("predicted {label}"),
                points,
                one_to_one: true,
                vline: None,
                hline: None,
                x_range: Some(ranges[k]),
                y_range: Some(ranges[k]),
            });
            let res: Vec<(f64, f64)> =
                stars.iter().map(|s| (s.reference[2], s.predicted[k] - s.reference[k])).collect();
            let half = [600.0, 1.0, 0.6][k];
            residuals.push(Panel {
                title: format!("{name}: Δ{param}"),
                x_label: "reference [Fe/H] [dex]".into(),
                y_label: format!("predicted − reference {label}"),
                points: res,
                one_to_one: false,
                vline: Some(-1.0),
                hline: Some(0.0),
                x_range: Some(ranges[2]),
                y_range: Some((-half, half)),
            });
        }
    }
    let p = out.join("predicted_vs_reference.png");
    plots::scatter_grid(&p, &versus, 3, (330, 300))?;
    html.push_str("<h3>Predicted against reference</h3>\n<p>One row per input and strategy; the line is y = x.</p>\n");
    image(html, summary, p, "predicted against reference labels");
    let p = out.join("residuals_vs_feh.png");
    plots::scatter_grid(&p, &residuals, 3, (330, 260))?;
    html.push_str(
        "<h3>Residuals against [Fe/H]</h3>\n<p>The dashed red line is the [Fe/H] = −1 split between the \
         metal-poor and metal-rich regimes.</p>\n",
    );
    image(html, summary, p, "residuals against reference [Fe/H]");

    // Are the errors honest? Δ/σ per head (input and strategy), never pooled: a calibrated head and
    // an uncalibrated one averaged together would look better than the worse of them.
    html.push_str(
        "<h3>Coverage and pulls per head</h3>\n<p>For each head, the fraction of stars whose |predicted − \
         reference| is within the reported 1σ and 2σ (0.683 and 0.954 when the errors are right), the robust width \
         of the pulls Δ/σ (1 when right) and their median (0 when unbiased). Below, each head's pull \
         distribution.</p>\n<table><tr><th class=l>head</th><th class=l>parameter</th><th>n</th><th>within 1σ</th>\
         <th>within 2σ</th><th>σ(Δ/σ)</th><th>median Δ/σ</th></tr>\n",
    );
    // The evaluation's own numbers for each head over all its test stars (regime "all").
    for m in e.metrics.iter().filter(|m| m.get(em::REGIME).is_some_and(|r| r == "all")) {
        let g = |k: &str| escape(m.get(k).map(String::as_str).unwrap_or(""));
        let _ = writeln!(
            html,
            "<tr><td class=l>{}/{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g(em::INPUT),
            g(em::STRATEGY),
            g(em::PARAMETER),
            g(em::N),
            g(em::WITHIN_1SIGMA),
            g(em::WITHIN_2SIGMA),
            g(em::Z_ROBUST_SIGMA),
            g(em::MEDIAN_Z)
        );
    }
    let pulls_of = |stars: &[data::ScoredStar], k: usize| -> Vec<f64> {
        stars.iter().map(|s| (s.predicted[k] - s.reference[k]) / s.error[k]).filter(|z| z.is_finite()).collect()
    };
    html.push_str("</table>\n");
    for (g, (name, stars)) in e.groups.iter().enumerate() {
        for (k, (param, _)) in PARAMETERS.iter().enumerate() {
            let p = out.join(format!("pulls_{g:02}_{param}.png"));
            plots::histogram(
                &p,
                &format!("{name}: Δ/σ of {param}"),
                "(predicted − reference) / reported σ",
                &pulls_of(stars, k),
                (-5.0, 5.0),
                50,
            )?;
            image(html, summary, p, &format!("pull distribution of {param}, {name}"));
        }
    }

    html.push_str("<h3>Metrics</h3>\n<p>bias: median Δ; robust σ: 1.4826 × MAD of Δ; outliers: |Δ| beyond 3 robust σ of the pooled sample; within 1σ, 2σ: fraction of |Δ| below once and twice the predicted error (0.68 and 0.95 if calibrated); σ(z): robust width of Δ/σ (1 if calibrated); median z: median Δ/σ.</p>\n");
    for (param, label) in PARAMETERS {
        let _ = writeln!(
            html,
            "<h4>{}</h4>\n<table><tr><th class=l>input</th><th class=l>strategy</th><th>n train</th><th class=l>regime</th><th>n</th><th>bias</th><th>robust σ</th><th>σ</th><th>MAE</th><th>outliers</th><th>within 1σ</th><th>within 2σ</th><th>σ(z)</th><th>median z</th></tr>",
            escape(label)
        );
        for m in e.metrics.iter().filter(|m| m.get(em::PARAMETER).is_some_and(|p| p == param)) {
            let g = |k: &str| escape(m.get(k).map(String::as_str).unwrap_or(""));
            let _ = writeln!(
                html,
                "<tr><td class=l>{}</td><td class=l>{}</td><td>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g(em::INPUT),
                g(em::STRATEGY),
                g(em::N_TRAIN),
                g(em::REGIME),
                g(em::N),
                g(em::BIAS),
                g(em::ROBUST_SIGMA),
                g(em::SIGMA),
                g(em::MAE),
                g(em::OUTLIER_FRACTION),
                g(em::WITHIN_1SIGMA),
                g(em::WITHIN_2SIGMA),
                g(em::Z_ROBUST_SIGMA),
                g(em::MEDIAN_Z)
            );
        }
        html.push_str("</table>\n");
    }
    Ok(())
}

fn catalog_section(c: &Catalog, out: &Path, html: &mut String, summary: &mut ReportSummary) -> Result<(), ReportError> {
    let basic = flags::cut("basic");
    let good = |i: usize| c.success[i] && c.primary[i] && basic.passes(c.flags[i]);
    let _ = writeln!(
        html,
        "<h2 id=\"catalogue\">Catalogue</h2>\n<p>{} rows of head <code>{}</code> ({} head(s) in the catalogue); {} primary \
         with no fatal or quality flag (the basic cut, <code>{}</code>: {}).</p>",
        c.rows,
        escape(&c.head),
        c.heads,
        (0..c.rows).filter(|&i| good(i)).count(),
        escape(&basic.sql()),
        escape(basic.keeps)
    );
    let stars: Vec<(f64, f64, f64)> =
        (0..c.rows).filter(|&i| good(i)).map(|i| (c.teff[i], c.logg[i], c.feh[i])).collect();
    let p = out.join("kiel.png");
    plots::kiel(&p, &format!("Kiel diagram: {} stars ({})", stars.len(), basic.sql()), &stars, (-2.5, 0.5))?;
    image(html, summary, p, "Kiel diagram coloured by [Fe/H]");

    let log_snr: Vec<f64> = c.snr.iter().map(|s| s.max(1e-3).log10()).collect();
    let p = out.join("snr.png");
    plots::histogram(&p, "S/N of the catalogue's spectra", "log10 S/N per pixel", &log_snr, (0.0, 3.0), 45)?;
    image(html, summary, p, "S/N distribution");

    let n = c.rows.max(1) as f64;
    let bars: Vec<(String, f64)> = flags::ALL
        .iter()
        .map(|f| {
            (
                format!("{} {}", f.bit(), f.name()),
                100.0 * c.flags.iter().filter(|&&x| x & f.mask() != 0).count() as f64 / n,
            )
        })
        .collect();
    let p = out.join("flags.png");
    plots::bars(&p, "Quality flags", "rows with the bit set [%]", &bars)?;
    image(html, summary, p, "flag bit frequencies");
    html.push_str("<table><tr><th>bit</th><th class=l>flag</th><th class=l>class</th><th>rows</th><th class=l>meaning</th></tr>\n");
    for f in flags::ALL {
        let count = c.flags.iter().filter(|&&x| x & f.mask() != 0).count();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{}</td><td>{count}</td><td class=l>{}</td></tr>",
            f.bit(),
            f.name(),
            f.class().name(),
            escape(f.description())
        );
    }
    html.push_str("</table>\n");
    Ok(())
}

fn ingest_section(a: &IngestAccounting, html: &mut String) {
    // Rows group reasons that differ only in numbers and paths; each shows one of them in full, so
    // the text reads as ingest wrote it ("not a 5×N image", "TARGETID <= 0"), never as the key.
    let _ = writeln!(
        html,
        "<h3><code>{}</code></h3>\n<table><tr><th class=l>level</th><th class=l>status</th><th>count</th>\
         <th class=l>reason (one of the group; the others differ only in numbers or paths)</th></tr>",
        escape(&a.dir.display().to_string())
    );
    let mut rows: Vec<_> = a.counts.iter().collect();
    rows.sort_by(|x, y| x.0.0.cmp(&y.0.0).then(x.0.1.cmp(&y.0.1)).then(y.1.0.cmp(&x.1.0)));
    for ((level, status, _kind), (n, example)) in rows {
        let _ = writeln!(
            html,
            "<tr><td class=l>{}</td><td class=l>{}</td><td>{n}</td><td class=l>{}</td></tr>",
            escape(level),
            escape(status),
            escape(example)
        );
    }
    html.push_str("</table>\n");
}
