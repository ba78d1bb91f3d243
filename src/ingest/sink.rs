//! Where processed inputs go, in input order: spectra shards cut at the shard size, each renamed
//! into place before its report part.

use super::options::IngestError;
use super::record::{FileOutcome, ReportRow};
use super::resume::*;
use super::shards::{SpectraShardWriter, write_report};
use super::summary::Counts;
use crate::artifacts::metadata::spectra::{
    COUNTS as META_COUNTS, FINGERPRINT as META_FINGERPRINT, INPUTS as META_INPUTS,
    INPUTS_FINGERPRINT as META_INPUTS_FINGERPRINT,
};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

pub(super) struct OpenShard {
    pub(super) writer: SpectraShardWriter,
    pub(super) first_input: usize,
    pub(super) report: Vec<ReportRow>,
    pub(super) counts: Counts,
}

/// Receives file outcomes in input order and cuts them into shards.
pub(super) struct ShardSink {
    pub(super) out: PathBuf,
    pub(super) tag: String,
    pub(super) fingerprint: String,
    pub(super) inputs_fingerprint: String,
    pub(super) metadata_common: Vec<(String, String)>,
    pub(super) npix: usize,
    pub(super) shard_size: usize,
    pub(super) row_group_rows: usize,
    pub(super) next_shard: usize,
    pub(super) open: Option<OpenShard>,
    pub(super) counts: Counts,
    pub(super) shards: Vec<String>,
}

impl ShardSink {
    pub(super) fn consume(&mut self, rx: Receiver<Vec<FileOutcome>>) -> Result<(), IngestError> {
        let mut last_end = None;
        for outcomes in rx {
            for o in outcomes {
                last_end = Some(o.input_index + 1);
                self.accept(o)?;
            }
        }
        if let Some(end) = last_end {
            self.close(end)?;
        }
        Ok(())
    }

    pub(super) fn accept(&mut self, mut o: FileOutcome) -> Result<(), IngestError> {
        // The last gate before a shard: whatever slipped through preprocessing fails here, by name.
        o.refuse_unwritable();
        let n = o.spectra.len();
        if let Some(open) = &self.open
            && open.writer.rows() > 0
            && open.writer.rows() + n > self.shard_size
        {
            self.close(o.input_index)?;
        }
        if self.open.is_none() {
            let path = shard_path(&self.out, &self.tag, self.next_shard);
            let writer = SpectraShardWriter::create(path, self.npix, self.row_group_rows, &self.metadata_common)?;
            self.open =
                Some(OpenShard { writer, first_input: o.input_index, report: vec![], counts: Counts::default() });
        }
        let open = self.open.as_mut().expect("opened above");
        open.counts.add_rows(&o.report);
        open.counts.spectra += n as u64;
        open.report.extend(o.report);
        for rec in o.spectra {
            open.writer.push(rec)?;
        }
        Ok(())
    }

    /// Finishes the open shard, which covers inputs up to (not including) `end_input`.
    pub(super) fn close(&mut self, end_input: usize) -> Result<(), IngestError> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let k = self.next_shard;
        let name = open.writer.file_name();
        // The report part waits under its temporary name until the shard is in place, so it never
        // lists spectra that are not on disk.
        let report = report_path(&self.out, &self.tag, k);
        write_report(&crate::io::tmp_path(&report), &name, &open.report)?;
        let mut meta = self.metadata_common.clone();
        meta.push((META_FINGERPRINT.into(), self.fingerprint.clone()));
        meta.push((META_INPUTS_FINGERPRINT.into(), self.inputs_fingerprint.clone()));
        meta.push((META_INPUTS.into(), format!("{}..{}", open.first_input, end_input)));
        meta.push((META_COUNTS.into(), serde_json::to_string(&open.counts).expect("counts serialise")));
        let rows = open.writer.rows();
        let path = open.writer.finish(meta)?;
        crate::io::commit(&report)?;
        tracing::info!(shard = %path.display(), spectra = rows, inputs = end_input - open.first_input, "shard written");
        self.counts.merge(&open.counts);
        self.shards.push(name);
        self.next_shard += 1;
        Ok(())
    }
}
