//! What ingest produces per input: spectrum rows for the shards and outcome rows for the report.

use crate::preprocess::{Prepared, Rejection};

/// Identity and survey metadata carried with a spectrum into its shard row
/// (column meanings: `schemas/normalized_spectra.toml`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpectrumMeta {
    pub spectrum_id: String,
    pub survey: &'static str,
    pub release: String,
    pub source_id: i64,
    pub obsid: Option<i64>,
    pub targetid: Option<i64>,
    pub ra: f64,
    pub dec: f64,
    pub source_path: String,
    pub source_row: i32,
    pub object_class: String,
    pub object_subclass: Option<String>,
    pub z: Option<f64>,
    pub z_err: Option<f64>,
    pub zwarn: Option<i64>,
    pub selection_method: &'static str,
    pub fiber_mask: Option<i32>,
    pub fiber_status: Option<i32>,
    pub desi_target: Option<i64>,
    pub bgs_target: Option<i64>,
    pub mws_target: Option<i64>,
    pub scnd_target: Option<i64>,
    /// LAMOST SNRU, SNRG, SNRR, SNRI, SNRZ.
    pub snr_ugriz: [Option<f32>; 5],
    /// DESI MEDIAN_COADD_SNR_B/R/Z.
    pub snr_arm_brz: [Option<f32>; 3],
    pub ids: SurveyIds,
}

/// The keys users join a catalogue on: the star across repeats, Gaia, the survey's own
/// observation keys (column meanings: `schemas/normalized_spectra.toml`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SurveyIds {
    pub star_id: String,
    pub gaia_source_id: Option<i64>,
    pub ref_id: Option<i64>,
    pub ref_cat: Option<String>,
    /// Gaia G, BP, RP mean magnitudes.
    pub gaia_mags: [Option<f32>; 3],
    pub desi_survey: Option<String>,
    pub desi_program: Option<String>,
    pub healpix: Option<i32>,
    pub tileid: Option<i32>,
    pub designation: Option<String>,
    pub lmjd: Option<i32>,
    pub planid: Option<String>,
    pub spid: Option<i32>,
    pub fiberid: Option<i32>,
}

impl SurveyIds {
    /// A LAMOST star's key: its designation without the survey prefix (repeat observations of a
    /// target share it), else the spectrum's own OBSID.
    pub fn lamost_star_id(designation: Option<&str>, obsid: Option<i64>) -> String {
        match designation.map(|d| d.trim().trim_start_matches("LAMOST").trim()).filter(|d| !d.is_empty()) {
            Some(d) => d.to_string(),
            None => format!("obsid-{}", obsid.unwrap_or(-1)),
        }
    }

    /// Gaia's source_id when DESI's reference catalogue is a Gaia release (REF_CAT G2, G3, GE…).
    pub fn gaia_from_ref(ref_id: Option<i64>, ref_cat: Option<&str>) -> Option<i64> {
        ref_id.filter(|_| ref_cat.is_some_and(|c| c.starts_with('G')))
    }
}

/// One spectrum ready for a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumRecord {
    pub meta: SpectrumMeta,
    pub prepared: Prepared,
}

impl SpectrumRecord {
    /// Why this spectrum must not reach a shard, if it must not: a normalised flux or ivar that is
    /// not finite, or a negative ivar. Readers downstream trust shards to hold neither.
    pub fn unwritable_reason(&self) -> Option<String> {
        let s = &self.prepared.spectrum;
        let bad_flux = s.flux.iter().filter(|v| !v.is_finite()).count();
        let bad_ivar = s.ivar.iter().filter(|v| !v.is_finite() || **v < 0.0).count();
        let bad_snr = !self.prepared.snr_grid.is_finite();
        (bad_flux + bad_ivar > 0 || bad_snr).then(|| {
            format!(
                "normalised spectrum not writable: {bad_flux} non-finite flux, {bad_ivar} non-finite or negative ivar \
                 pixels{}",
                if bad_snr { ", non-finite S/N" } else { "" }
            )
        })
    }
}

/// A reason without its particulars, so reasons group by kind: a trailing parenthesis dropped,
/// file paths replaced by FILE, numbers by N ("truncated: HDU 2 ends at byte 109440 …" →
/// "truncated: HDU N ends at byte N …"; "redrock file a/redrock-1.fits: …" → "redrock file FILE: …").
pub fn reason_kind(reason: &str) -> String {
    let mut r = reason.trim();
    if r.ends_with(')')
        && let Some(open) = r.rfind(" (")
    {
        r = &r[..open];
    }
    let without_paths: Vec<String> = r.split(' ').map(replace_path).collect();
    let r = without_paths.join(" ");
    let mut out = String::with_capacity(r.len());
    let mut in_number = false;
    for c in r.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('N');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// `word` with a file path in it replaced by FILE, punctuation around it kept.
fn replace_path(word: &str) -> String {
    let core = word.trim_end_matches([':', ',', ';', ')', '\'', '"']).trim_start_matches(['(', '\'', '"']);
    let is_path = core.contains('/')
        || [".fits", ".fits.gz", ".fit", ".gz", ".parquet", ".csv"].iter().any(|e| core.ends_with(e));
    if is_path && !core.is_empty() { word.replacen(core, "FILE", 1) } else { word.to_string() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Written,
    Skipped,
    Failed,
}

impl Status {
    /// Broken data is a failure; data that is fine but unusable for us is a skip.
    pub fn of_rejection(r: &Rejection) -> Self {
        match r {
            Rejection::AllFluxNonFinite | Rejection::NoUsablePixels | Rejection::Continuum(_) => Status::Failed,
            Rejection::NoGridOverlap { .. } | Rejection::TooMasked { .. } => Status::Skipped,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Written => "written",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    File,
    Target,
}

/// One row of the ingest report (`schemas/ingest_report.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub input_index: i64,
    pub input_path: String,
    pub level: Level,
    pub source_row: Option<i32>,
    pub source_id: Option<i64>,
    pub status: Status,
    pub reason: Option<String>,
    pub spectrum_id: Option<String>,
}

/// Everything one input file produced: report rows (the file row first) and spectra to write.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutcome {
    pub input_index: usize,
    pub report: Vec<ReportRow>,
    pub spectra: Vec<SpectrumRecord>,
}

impl FileOutcome {
    pub fn file_failed(input_index: usize, input_path: &str, source_id: Option<i64>, reason: String) -> Self {
        Self::single(input_index, input_path, source_id, Status::Failed, reason)
    }

    pub fn file_skipped(input_index: usize, input_path: &str, source_id: Option<i64>, reason: String) -> Self {
        Self::single(input_index, input_path, source_id, Status::Skipped, reason)
    }

    fn single(input_index: usize, input_path: &str, source_id: Option<i64>, status: Status, reason: String) -> Self {
        Self {
            input_index,
            report: vec![ReportRow {
                input_index: input_index as i64,
                input_path: input_path.to_string(),
                level: Level::File,
                source_row: None,
                source_id,
                status,
                reason: Some(reason),
                spectrum_id: None,
            }],
            spectra: vec![],
        }
    }

    /// Turns every spectrum that must not be written ([`SpectrumRecord::unwritable_reason`]) into
    /// a failure of its report row; a file left with no written spectrum fails as a whole.
    pub fn refuse_unwritable(&mut self) {
        let mut kept = Vec::with_capacity(self.spectra.len());
        for rec in std::mem::take(&mut self.spectra) {
            let Some(reason) = rec.unwritable_reason() else {
                kept.push(rec);
                continue;
            };
            let id = Some(&rec.meta.spectrum_id);
            for row in self.report.iter_mut().filter(|r| r.spectrum_id.as_ref() == id) {
                row.status = Status::Failed;
                row.reason = Some(reason.clone());
                row.spectrum_id = None;
            }
        }
        self.spectra = kept;
        let file = &mut self.report[0];
        if file.status == Status::Written && self.spectra.is_empty() {
            file.status = Status::Failed;
            file.reason = Some("no spectrum written: every one had non-finite values after normalisation".into());
        }
    }

    /// Status of the whole file (its first report row).
    pub fn file_status(&self) -> Status {
        self.report[0].status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectrum::GridSpectrum;

    fn record(id: &str, ivar0: f32) -> SpectrumRecord {
        let spectrum = GridSpectrum { flux: vec![1.0, 0.9], ivar: vec![ivar0, 4.0] };
        let prepared = Prepared { spectrum, snr_grid: 20.0, masked_fraction: 0.0, rest_frame_applied: true };
        SpectrumRecord { meta: SpectrumMeta { spectrum_id: id.into(), ..Default::default() }, prepared }
    }

    fn row(level: Level, id: Option<&str>) -> ReportRow {
        ReportRow {
            input_index: 0,
            input_path: "x.fits".into(),
            level,
            source_row: None,
            source_id: None,
            status: Status::Written,
            reason: None,
            spectrum_id: id.map(str::to_string),
        }
    }

    #[test]
    fn the_writer_refuses_a_non_finite_spectrum_and_the_file_goes_on() {
        // A DESI file: one good star, one whose normalised ivar overflowed.
        let mut o = FileOutcome {
            input_index: 0,
            report: vec![row(Level::File, None), row(Level::Target, Some("a")), row(Level::Target, Some("b"))],
            spectra: vec![record("a", 1.0), record("b", f32::INFINITY)],
        };
        o.refuse_unwritable();
        assert_eq!(o.spectra.iter().map(|s| s.meta.spectrum_id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(o.report[1].status, Status::Written);
        assert_eq!(o.report[2].status, Status::Failed);
        assert!(o.report[2].reason.as_deref().unwrap().contains("1 non-finite or negative ivar"));
        assert_eq!(o.report[2].spectrum_id, None);
        assert_eq!(o.file_status(), Status::Written);

        // A LAMOST file whose only spectrum has a negative ivar fails as a whole.
        let mut o =
            FileOutcome { input_index: 0, report: vec![row(Level::File, Some("c"))], spectra: vec![record("c", -1.0)] };
        o.refuse_unwritable();
        assert!(o.spectra.is_empty());
        assert_eq!(o.file_status(), Status::Failed);
        assert!(o.report[0].reason.as_deref().unwrap().contains("not writable"));

        // A good spectrum passes untouched.
        let mut o =
            FileOutcome { input_index: 0, report: vec![row(Level::File, Some("d"))], spectra: vec![record("d", 2.0)] };
        let before = o.clone();
        o.refuse_unwritable();
        assert_eq!(o, before);
    }

    #[test]
    fn reasons_group_by_kind() {
        use super::reason_kind;
        assert_eq!(
            reason_kind("unassigned or stuck fibre: TARGETID <= 0 (TARGETID=-1000008)"),
            "unassigned or stuck fibre: TARGETID <= N"
        );
        assert_eq!(
            reason_kind("truncated: HDU 2 ends at byte 109440 but the file has 54720 bytes"),
            "truncated: HDU N ends at byte N but the file has N bytes"
        );
        assert_eq!(reason_kind("60 stars written (100 targets: 40 skipped)"), "N stars written");
        assert_eq!(
            reason_kind("redrock file data/x/redrock-sv3-bright-10016.fits: missing HDU REDSHIFTS"),
            "redrock file FILE: missing HDU REDSHIFTS"
        );
        assert_eq!(reason_kind("cannot open coadd-1.fits.gz, giving up"), "cannot open FILE, giving up");
        assert_eq!(reason_kind(""), "");
    }
}
