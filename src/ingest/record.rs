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
}

/// One spectrum ready for a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumRecord {
    pub meta: SpectrumMeta,
    pub prepared: Prepared,
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

    /// Status of the whole file (its first report row).
    pub fn file_status(&self) -> Status {
        self.report[0].status
    }
}
