//! What an ingest task accounts for: written, skipped and failed counts per level, and the summary
//! it writes last (`ingest-summary-<task>.json`).

use super::record::{Level, ReportRow, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Written/skipped/failed counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub files: BTreeMap<String, u64>,
    pub targets: BTreeMap<String, u64>,
    pub spectra: u64,
    /// Reason text → number of files/targets that were skipped or failed for it.
    pub reasons: BTreeMap<String, u64>,
}

impl Counts {
    pub(super) fn add_rows(&mut self, rows: &[ReportRow]) {
        for r in rows {
            let bucket = if r.level == Level::File { &mut self.files } else { &mut self.targets };
            *bucket.entry(r.status.as_str().to_string()).or_default() += 1;
            if r.status != Status::Written {
                // Group by kind; the particulars (paths, ids, values) stay in the report.
                let kind = super::record::reason_kind(r.reason.as_deref().unwrap_or(""));
                *self.reasons.entry(format!("{}: {}", r.status.as_str(), kind)).or_default() += 1;
            }
        }
    }

    pub(super) fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.files {
            *self.files.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.targets {
            *self.targets.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.reasons {
            *self.reasons.entry(k.clone()).or_default() += v;
        }
        self.spectra += other.spectra;
    }
}

/// What a run did, also written as `ingest-summary-<task>.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestSummary {
    pub survey: String,
    pub task: String,
    pub inputs: u64,
    pub shards: Vec<String>,
    /// Shards kept from an earlier run; not written to the summary file, so that a resumed run
    /// writes the same bytes as an uninterrupted one.
    #[serde(skip)]
    pub shards_resumed: u64,
    pub counts: Counts,
}

impl IngestSummary {
    /// When every input of the task failed, why that is most likely not the files' fault: the
    /// wrong `--survey`, or a systemic problem named by the most common reason.
    /// Why this task's outcome should fail its command: every input failed, or more than
    /// `max_failed_fraction` of them (`--max-failed-fraction`). `None`: the run succeeded.
    pub fn failure(&self, max_failed_fraction: Option<f64>) -> Option<String> {
        if let Some(why) = self.all_failed() {
            return Some(why);
        }
        let max = max_failed_fraction?;
        let failed = self.files(Status::Failed);
        let fraction = failed as f64 / self.inputs.max(1) as f64;
        (fraction > max).then(|| {
            format!(
                "ingest task {}: {failed} of {} input files failed ({:.1} % > --max-failed-fraction {:.1} %)",
                self.task,
                self.inputs,
                100.0 * fraction,
                100.0 * max
            )
        })
    }

    pub fn all_failed(&self) -> Option<String> {
        let failed = self.files(Status::Failed);
        if self.inputs == 0 || failed < self.inputs {
            return None;
        }
        let (top, _) =
            self.counts.reasons.iter().filter(|(k, _)| k.starts_with("failed: ")).max_by_key(|(_, n)| **n)?;
        let top = top.trim_start_matches("failed: ");
        let hint = match self.survey.as_str() {
            "lamost" if top.contains("not a LAMOST LRS file") || top.contains("OBSID") => {
                "; these look like DESI files: --survey desi?"
            }
            "desi" if top.contains("FIBERMAP") => "; these look like LAMOST files: --survey lamost?",
            _ => "",
        };
        Some(format!(
            "every one of the {} input files of ingest task {} failed (most often: {top}){hint}",
            self.inputs, self.task
        ))
    }

    pub fn files(&self, status: Status) -> u64 {
        self.counts.files.get(status.as_str()).copied().unwrap_or(0)
    }
    pub fn targets(&self, status: Status) -> u64 {
        self.counts.targets.get(status.as_str()).copied().unwrap_or(0)
    }
}
