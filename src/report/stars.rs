//! Why is a star flagged? One figure per chosen spectrum: its normalised flux, the emulator at the
//! predicted labels on the same continuum (the reconstruction behind `chi2_red`), the residuals
//! in units of the σ the χ² uses, masked pixels shaded, and the labels, errors and flag names,
//! so a user can judge a flagged star as they would with specutils.

use super::data::Catalog;
use super::{ReportError, ReportSummary, escape, image};
use crate::catalog::flags;
use crate::grid::LogGrid;
use crate::trust::reconstruction::{SpectrumReconstruction, reconstruct_spectra};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The chosen spectra found in the ingest directories and reconstructed at the catalogue's labels
/// on `window` (as `infer` did for `chi2_red`), in the order asked. An id the catalogue's head lacks,
/// or that no spectra directory holds, is an error naming it.
pub(super) fn reconstruct(
    c: &Catalog,
    catalog: &Path,
    spectra: &[PathBuf],
    ids: &[String],
    window: &LogGrid,
) -> Result<Vec<SpectrumReconstruction>, ReportError> {
    let wanted = c.labels_of(catalog, ids)?;
    let read =
        |path: &Path, e: &dyn std::fmt::Display| ReportError::Read { path: path.to_path_buf(), reason: e.to_string() };
    let shards = crate::artifacts::discover::shard_paths(spectra, crate::artifacts::ShardKind::Spectra)
        .map_err(|e| read(catalog, &e))?;
    let mut found = reconstruct_spectra(&shards, window, &wanted).map_err(|e| read(catalog, &e))?;
    ids.iter()
        .map(|id| {
            let k = found.iter().position(|r| &r.spectrum_id == id).ok_or_else(|| {
                read(catalog, &format!("spectrum '{id}' is in the catalogue but in none of the --spectra directories"))
            })?;
            Ok(found.swap_remove(k))
        })
        .collect()
}

/// The names of the flag bits set in `mask`.
pub fn flag_names(mask: u32) -> Vec<&'static str> {
    flags::ALL.iter().filter(|f| mask & f.mask() != 0).map(|f| f.name()).collect()
}

/// The section: a table of the chosen spectra and one figure each (`star_<k>.png`).
pub(super) fn stars_section(
    c: &Catalog,
    stars: &[SpectrumReconstruction],
    out: &Path,
    html: &mut String,
    summary: &mut ReportSummary,
) -> Result<(), ReportError> {
    html.push_str(
        "<h2 id=\"stars\">Chosen spectra: why they are flagged</h2>\n<p>Each spectrum (black) with the MILES \
         emulator at its predicted labels brought to the same continuum (red: the reconstruction behind \
         <code>chi2_red</code>), masked pixels shaded, and below the residuals in units of the σ the χ² uses \
         (noise and a 3 % model error).</p>\n<table><tr><th class=l>spectrum</th><th class=l>survey</th><th>S/N</th>\
         <th>Teff [K]</th><th>log g</th><th>[Fe/H]</th><th>χ²<sub>red</sub> (catalogue)</th><th>χ²<sub>red</sub> (figure)</th>\
         <th class=l>flags</th></tr>\n",
    );
    let mut figures = Vec::new();
    for (k, s) in stars.iter().enumerate() {
        let Some(r) = c.row_of(&s.spectrum_id) else { continue };
        let chi2 = s.fit.as_ref().map_or(f64::NAN, |f| f.chi2_red);
        let e = c.errors[r];
        let names = flag_names(c.flags[r]);
        let labels = format!(
            "Teff {:.0} ± {:.0} K, log g {:.2} ± {:.2}, [Fe/H] {:.2} ± {:.2}",
            c.teff[r], e[0], c.logg[r], e[1], c.feh[r], e[2]
        );
        let _ = writeln!(
            html,
            "<tr><td class=l>{}</td><td class=l>{}</td><td>{:.1}</td><td>{:.0} ± {:.0}</td><td>{:.2} ± {:.2}</td>\
             <td>{:.2} ± {:.2}</td><td>{:.2}</td><td>{:.2}</td><td class=l>{}</td></tr>",
            escape(&s.spectrum_id),
            escape(&s.survey),
            c.snr[r],
            c.teff[r],
            e[0],
            c.logg[r],
            e[1],
            c.feh[r],
            e[2],
            c.chi2_red[r],
            chi2,
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        let title = format!("{} ({}, head {}): {labels}", s.spectrum_id, s.survey, c.head);
        let subtitle = format!(
            "χ²_red {:.2} (catalogue {:.2}), S/N {:.1}, flags: {}",
            chi2,
            c.chi2_red[r],
            c.snr[r],
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        let path = out.join(format!("star_{k:02}.png"));
        let plot = super::plots::SpectrumPlot {
            wave: &s.wave,
            flux: &s.flux,
            ivar: &s.ivar,
            model: s.fit.as_ref().map(|f| f.model.as_slice()),
            sigma: s.fit.as_ref().map(|f| f.sigma.as_slice()),
        };
        super::plots::star_spectrum(&path, &title, &subtitle, &plot)?;
        figures.push((path, s.spectrum_id.clone()));
    }
    html.push_str("</table>\n");
    for (path, id) in figures {
        image(html, summary, path, &format!("spectrum {id} with its reconstruction"));
    }
    Ok(())
}
