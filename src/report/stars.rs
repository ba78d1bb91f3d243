//! Why is a star flagged? One figure per chosen spectrum: its normalised flux, the emulator at the
//! predicted labels on the same continuum (the reconstruction behind `chi2_red`), the residuals
//! in units of the σ the χ² uses, masked pixels shaded, and the labels, errors and flag names,
//! so a user can judge a flagged star as they would with specutils.

use super::data::Catalog;
use super::{ReportError, ReportSummary, escape, image};
use crate::catalog::flags;
use std::fmt::Write as _;
use std::path::Path;

/// One spectrum as the reconstruction saw it (from `trust::reconstruction::reconstruct_spectra`).
#[derive(Debug, Clone)]
pub struct StarSpectrum {
    pub spectrum_id: String,
    pub survey: String,
    /// Window wavelengths (vacuum, rest frame, Å), normalised flux and ivar (0 = masked).
    pub wave: Vec<f64>,
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
    /// The emulator at the predicted labels on the observed continuum, and the per-pixel σ the χ²
    /// uses; None when it could not be fitted (too few usable pixels).
    pub model: Option<Vec<f64>>,
    pub sigma: Option<Vec<f64>>,
    /// The reduced χ² of this reconstruction (the catalogue's `chi2_red` when the window matches).
    pub chi2_red: f64,
}

/// The names of the flag bits set in `mask`.
pub fn flag_names(mask: u32) -> Vec<&'static str> {
    flags::ALL.iter().filter(|f| mask & f.mask() != 0).map(|f| f.name()).collect()
}

/// The section: a table of the chosen spectra and one figure each (`star_<k>.png`).
pub(super) fn stars_section(
    c: &Catalog,
    stars: &[StarSpectrum],
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
            s.chi2_red,
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        let title = format!("{} ({}, head {}): {labels}", s.spectrum_id, s.survey, c.head);
        let subtitle = format!(
            "χ²_red {:.2} (catalogue {:.2}), S/N {:.1}, flags: {}",
            s.chi2_red,
            c.chi2_red[r],
            c.snr[r],
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        let path = out.join(format!("star_{k:02}.png"));
        let plot = super::plots::SpectrumPlot {
            wave: &s.wave,
            flux: &s.flux,
            ivar: &s.ivar,
            model: s.model.as_deref(),
            sigma: s.sigma.as_deref(),
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
