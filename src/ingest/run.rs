//! The ingest run: discover → take this task's share → resume → process in parallel → write shards.
//!
//! Invariants (see ARCHITECTURE.md):
//! - every input of the task ends in exactly one report part, as written, skipped or failed;
//! - shard `k` covers a contiguous range of the task's ordered inputs and all spectra from them;
//!   a file's spectra never straddle two shards;
//! - a report part exists under its final name only when its shard does (the shard is renamed
//!   first), so the report never lists spectra that are not on disk; a shard without its report
//!   part is unfinished (killed between the renames) and the re-run writes it again;
//! - the shard contents depend only on the inputs and the settings (the fingerprint), so a resumed
//!   run writes the same files an uninterrupted one would; shards made from input files that have
//!   changed since (size or modification time) are discarded and the task starts over.

use super::desi::{DesiOptions, ingest_desi_file};
use super::discover::{DiscoverError, Input, Survey, discover};
use super::lamost::ingest_lamost_file;
use super::record::{FileOutcome, Level, ReportRow, Status};
use super::shards::{SpectraShardWriter, write_report};
use crate::artifacts::ShardSpec;
use crate::artifacts::naming;
use crate::io::{WriteError, read_key_value_metadata};
use crate::preprocess::{DESI_SEGMENT_BREAKS, LAMOST_SEGMENT_BREAKS, PreprocessConfig, Preprocessor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};

/// Everything that defines an ingest run. Build with [`IngestOptions::new`] and the `with_*` setters.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub survey: Survey,
    pub input: PathBuf,
    pub out: PathBuf,
    pub shard: ShardSpec,
    pub threads: Option<usize>,
    /// Spectra per output shard (a shard may exceed it by less than one file's spectra only if one
    /// file alone holds more).
    pub shard_size: usize,
    pub row_group_rows: usize,
    pub preprocess: PreprocessConfig,
    pub desi: DesiOptions,
    pub progress: bool,
    /// The bar to advance (the CLI's, drawn with its log lines); without one, ingest draws its own
    /// when `progress` is on.
    pub bar: Option<ProgressBar>,
}

impl IngestOptions {
    pub fn new(
        survey: Survey,
        input: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
        preprocess: PreprocessConfig,
    ) -> Self {
        Self {
            survey,
            input: input.into(),
            out: out.into(),
            shard: ShardSpec::default(),
            threads: None,
            shard_size: 50_000,
            row_group_rows: 4096,
            preprocess,
            desi: DesiOptions::default(),
            progress: true,
            bar: None,
        }
    }
    pub fn with_shard(mut self, shard: ShardSpec) -> Self {
        self.shard = shard;
        self
    }
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads;
        self
    }
    pub fn with_shard_size(mut self, n: usize) -> Self {
        self.shard_size = n.max(1);
        self
    }
    pub fn with_row_group_rows(mut self, n: usize) -> Self {
        self.row_group_rows = n.max(1);
        self
    }
    pub fn with_desi(mut self, desi: DesiOptions) -> Self {
        self.desi = desi;
        self
    }
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }
    pub fn with_progress_bar(mut self, bar: Option<ProgressBar>) -> Self {
        self.bar = bar;
        self
    }
}

/// Errors that stop a run: a bad command line or an output that cannot be written.
/// Bad inputs never produce one of these.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot create output directory {path}: {source}")]
    OutDir { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} was written by a different ingest (other inputs, settings or starpipe version): \
         fingerprint {found} != {expected}; use a new --out directory or remove this task's spectra-*/report-* files"
    )]
    ForeignShard { path: PathBuf, found: String, expected: String },
    #[error("{path} is not a complete starpipe shard: {reason}; remove it to re-run that shard")]
    BrokenShard { path: PathBuf, reason: String },
    #[error("cannot start {0} worker threads: {1}")]
    Threads(usize, String),
    #[error(
        "{out} holds the output of an ingest split into {found} task(s) ({example}), and this task is one of \
         {expected}: mixing counts would write every spectrum twice. Use --shard i/{found}, another --out, or \
         remove the old spectra-*/report-*/ingest-summary-* files"
    )]
    OtherShardCount { out: PathBuf, found: usize, expected: usize, example: String },
}

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
    fn add_rows(&mut self, rows: &[ReportRow]) {
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

    fn merge(&mut self, other: &Counts) {
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

use crate::artifacts::metadata::VERSION as META_VERSION;
use crate::artifacts::metadata::spectra::{
    COUNTS as META_COUNTS, FINGERPRINT as META_FINGERPRINT, GRID as META_GRID, INPUTS as META_INPUTS,
    INPUTS_FINGERPRINT as META_INPUTS_FINGERPRINT, PREPROCESS as META_PREPROCESS,
};

fn fingerprint(opts: &IngestOptions) -> String {
    fingerprint_for(opts, crate::VERSION)
}

/// The fingerprint a starpipe of `version` would record for these settings.
fn fingerprint_for(opts: &IngestOptions, version: &str) -> String {
    let mut h = Sha256::new();
    let settings = serde_json::json!({
        "version": version,
        // Shards written with another column set are not this run's shards, whatever the version.
        "schema": format!("{:x}", Sha256::digest(crate::schema::NORMALIZED_SPECTRA_TOML.as_bytes())),
        "survey": opts.survey,
        "preprocess": opts.preprocess,
        "desi_rules": {
            "allowed_fiberstatus_bits": opts.desi.rules.allowed_fiberstatus_bits,
            "max_abs_rv_kms": opts.desi.rules.max_abs_rv_kms,
            "min_arm_good_fraction": opts.desi.rules.min_arm_good_fraction,
        },
        "shard": opts.shard.to_string(),
        "shard_size": opts.shard_size,
        "row_group_rows": opts.row_group_rows,
    });
    h.update(settings.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The task's input files as they are now: name, size and modification time. A re-run whose
/// inputs changed (a broken file replaced, files added) starts the task over instead of keeping
/// shards made from the old files.
fn inputs_fingerprint(inputs: &[Input]) -> String {
    let mut h = Sha256::new();
    for i in inputs {
        h.update(i.display.as_bytes());
        if let Ok(m) = std::fs::metadata(&i.path) {
            let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            h.update(format!("\t{}\t{}", m.len(), mtime.map_or(0, |d| d.as_nanos())).as_bytes());
        }
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn shard_path(out: &Path, tag: &str, k: usize) -> PathBuf {
    out.join(naming::spectra_shard(tag, k))
}

fn report_path(out: &Path, tag: &str, k: usize) -> PathBuf {
    out.join(naming::report_part(tag, k))
}

/// Where a previous run of the same task stopped.
struct ResumePoint {
    next_shard: usize,
    next_input: usize,
    counts: Counts,
    shards: Vec<String>,
}

fn find_resume_point(out: &Path, tag: &str, expected: &str, inputs_fp: &str) -> Result<ResumePoint, IngestError> {
    let mut p = ResumePoint { next_shard: 0, next_input: 0, counts: Counts::default(), shards: vec![] };
    loop {
        let path = shard_path(out, tag, p.next_shard);
        if !path.exists() {
            return Ok(p);
        }
        let broken = |reason: String| IngestError::BrokenShard { path: path.clone(), reason };
        let kv: BTreeMap<String, String> = read_key_value_metadata(&path).map_err(broken)?.into_iter().collect();
        let found = kv.get(META_FINGERPRINT).cloned().unwrap_or_default();
        if found != expected {
            return Err(IngestError::ForeignShard { path, found, expected: expected.to_string() });
        }
        if kv.get(META_INPUTS_FINGERPRINT).map(String::as_str) != Some(inputs_fp) {
            tracing::warn!(shard = %path.display(), "the input files changed since this task ran: starting it over");
            remove_task_outputs(out, tag);
            return Ok(ResumePoint { next_shard: 0, next_input: 0, counts: Counts::default(), shards: vec![] });
        }
        if !report_path(out, tag, p.next_shard).exists() {
            // Killed after the shard's rename, before its report part's: not finished.
            tracing::info!(shard = %path.display(), "no report part: the shard is written again");
            return Ok(p);
        }
        let range = kv.get(META_INPUTS).ok_or_else(|| broken("no input range in metadata".into()))?;
        let (start, end) = range
            .split_once("..")
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .ok_or_else(|| broken(format!("bad input range '{range}'")))?;
        if start != p.next_input {
            return Err(broken(format!("covers inputs {start}..{end}, expected to start at {}", p.next_input)));
        }
        let counts: Counts = kv
            .get(META_COUNTS)
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| broken("no counts in metadata".into()))?;
        p.counts.merge(&counts);
        p.shards.push(path.file_name().unwrap().to_string_lossy().into_owned());
        p.next_input = end;
        p.next_shard += 1;
    }
}

/// Removes shards and report parts numbered at or after the first unfinished shard: a shard whose
/// report part is missing (a run killed between the two renames) and anything after it (files
/// removed by hand) would be counted twice or not at all.
fn remove_unfinished(out: &Path, tag: &str, first_unfinished: usize) {
    let mut k = first_unfinished;
    // Files are numbered consecutively, but a gap can be left by hand: look a little past one.
    let mut misses = 0;
    while misses < 16 {
        let (shard, report) = (shard_path(out, tag, k), report_path(out, tag, k));
        if shard.exists() || report.exists() {
            for path in [shard, report].iter().filter(|p| p.exists()) {
                tracing::info!(file = %path.display(), "removing an output of an unfinished shard");
                let _ = std::fs::remove_file(path);
            }
            misses = 0;
        } else {
            misses += 1;
        }
        k += 1;
    }
}

/// Refuses to write task files of `count` tasks into a directory that holds another count's.
fn refuse_other_shard_count(out: &Path, count: usize) -> Result<(), IngestError> {
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(found) = naming::ingest_task_count(&name).filter(|&n| n != count) {
            return Err(IngestError::OtherShardCount { out: out.to_path_buf(), found, expected: count, example: name });
        }
    }
    Ok(())
}

/// Removes every output of this task (shards, report parts, summary).
fn remove_task_outputs(out: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        if naming::is_ingest_task_output(&e.file_name().to_string_lossy(), tag) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes temporary files a killed run of this task left behind.
fn remove_stale_tmp(out: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") && name.contains(tag) {
            tracing::info!(file = %e.path().display(), "removing temporary file of an interrupted run");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Runs ingest; returns what it did. Per-input problems are in the report, not in the error.
pub fn run_ingest(opts: &IngestOptions) -> Result<IngestSummary, IngestError> {
    let all = discover(opts.survey, &opts.input)?;
    let inputs = opts.shard.select(&all);
    let tag = opts.shard.tag();
    std::fs::create_dir_all(&opts.out).map_err(|e| IngestError::OutDir { path: opts.out.clone(), source: e })?;
    refuse_other_shard_count(&opts.out, opts.shard.count)?;
    remove_stale_tmp(&opts.out, &tag);
    let fp = fingerprint(opts);
    let inputs_fp = inputs_fingerprint(&inputs);
    let resume = find_resume_point(&opts.out, &tag, &fp, &inputs_fp)?;
    remove_unfinished(&opts.out, &tag, resume.next_shard);
    tracing::info!(
        survey = opts.survey.as_str(),
        discovered = all.len(),
        task = %opts.shard,
        inputs = inputs.len(),
        resumed_shards = resume.next_shard,
        resume_at_input = resume.next_input,
        "ingest starting"
    );

    let breaks = match opts.survey {
        Survey::Lamost => LAMOST_SEGMENT_BREAKS,
        Survey::Desi => DESI_SEGMENT_BREAKS,
    };
    let pre = Preprocessor::new(opts.preprocess.clone(), breaks);
    let threads = opts.threads.unwrap_or(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| IngestError::Threads(threads, e.to_string()))?;

    let remaining = &inputs[resume.next_input..];
    let bar = match &opts.bar {
        Some(b) => {
            b.set_length(remaining.len() as u64);
            b.clone()
        }
        None => progress_bar(remaining.len() as u64, opts.progress),
    };
    let mut heartbeat = crate::progress::Heartbeat::default();
    let mut sink = ShardSink {
        out: opts.out.clone(),
        tag: tag.clone(),
        fingerprint: fp,
        inputs_fingerprint: inputs_fp,
        metadata_common: common_metadata(opts),
        npix: opts.preprocess.grid.npix,
        shard_size: opts.shard_size,
        row_group_rows: opts.row_group_rows,
        next_shard: resume.next_shard,
        open: None,
        counts: resume.counts,
        shards: resume.shards,
    };
    // Workers decode in parallel while one thread compresses and writes, a few chunks behind.
    let chunk = (pool.current_num_threads() * if opts.survey == Survey::Desi { 2 } else { 64 }).max(1);
    let mut failures_logged = 0usize;
    let written = std::thread::scope(|scope| -> Result<(), IngestError> {
        let (tx, rx) = sync_channel::<Vec<FileOutcome>>(2);
        let writer = scope.spawn(|| sink.consume(rx));
        for (c, inputs_chunk) in remaining.chunks(chunk).enumerate() {
            let base = resume.next_input + c * chunk;
            let outcomes: Vec<FileOutcome> = pool.install(|| {
                inputs_chunk
                    .par_iter()
                    .enumerate()
                    .map(|(j, input)| process_input(opts, &pre, base + j, input))
                    .collect()
            });
            for o in outcomes.iter().filter(|o| o.file_status() == Status::Failed) {
                log_failure(&o.report[0], &mut failures_logged);
            }
            bar.inc(inputs_chunk.len() as u64);
            heartbeat.tick(&bar, "input files done");
            if tx.send(outcomes).is_err() {
                break; // the writer stopped on an error; it reports it below
            }
        }
        drop(tx);
        writer.join().expect("shard writer thread panicked")
    });
    bar.finish_and_clear();
    written?;
    if failures_logged > FAILURES_ON_CONSOLE {
        tracing::warn!(
            more = failures_logged - FAILURES_ON_CONSOLE,
            reports = %opts.out.join(crate::artifacts::naming::report_parts_glob(&tag)).display(),
            "more inputs failed than were shown; every failure and its reason is in the report parts"
        );
    }

    let summary = IngestSummary {
        survey: opts.survey.as_str().to_string(),
        task: opts.shard.to_string(),
        inputs: inputs.len() as u64,
        shards_resumed: resume.next_shard as u64,
        shards: sink.shards.clone(),
        counts: sink.counts.clone(),
    };
    let summary_path = opts.out.join(naming::ingest_summary(&tag));
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    crate::io::write_bytes_atomically(&summary_path, json.as_bytes())?;
    Ok(summary)
}

/// Failed inputs shown as WARN lines per task; the rest go to debug level and the report, so a
/// release with 1 % bad files does not print 100,000 lines.
const FAILURES_ON_CONSOLE: usize = 10;

fn log_failure(row: &ReportRow, logged: &mut usize) {
    let reason = row.reason.as_deref().unwrap_or("");
    *logged += 1;
    if *logged <= FAILURES_ON_CONSOLE {
        tracing::warn!(file = %row.input_path, reason, "input failed");
        if *logged == FAILURES_ON_CONSOLE {
            tracing::warn!("further failures of this task are logged at debug level only");
        }
    } else {
        tracing::debug!(file = %row.input_path, reason, "input failed");
    }
}

fn process_input(opts: &IngestOptions, pre: &Preprocessor, index: usize, input: &Input) -> FileOutcome {
    if let Some(reason) = &input.walk_error {
        return FileOutcome::file_failed(index, &input.display, None, reason.clone());
    }
    if !input.path.is_file() {
        return FileOutcome::file_failed(index, &input.display, None, "file not found".into());
    }
    let name = input.path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if opts.survey == Survey::Desi && name.starts_with("redrock-") {
        let reason = "a redrock file is read as the companion of its coadd (coadd-*.fits beside it); list the coadd";
        return FileOutcome::file_skipped(index, &input.display, None, reason.into());
    }
    // A bug on one odd file must not take the run down with it: record it as that file's failure.
    let run = std::panic::AssertUnwindSafe(|| match opts.survey {
        Survey::Lamost => ingest_lamost_file(index, &input.path, &input.display, pre),
        Survey::Desi => ingest_desi_file(index, &input.path, &input.display, pre, &opts.desi),
    });
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        FileOutcome::file_failed(index, &input.display, None, format!("internal error (please report): {msg}"))
    })
}

fn progress_bar(len: u64, enabled: bool) -> ProgressBar {
    let target = if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} ingest [{elapsed_precise}] {wide_bar} {pos}/{len} files ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar
}

fn common_metadata(opts: &IngestOptions) -> Vec<(String, String)> {
    let g = &opts.preprocess.grid;
    let grid = serde_json::json!({
        "kind": "log10-linear",
        "log10_lambda0": g.log10_lambda0,
        "dlog10_lambda": g.dlog10_lambda,
        "start": g.start,
        "npix": g.npix,
        "wavelength_first_angstrom": g.first_angstrom(),
        "wavelength_last_angstrom": g.last_angstrom(),
        "medium": "vacuum",
        // Rows without a redshift stay in the observed frame even when rest framing is on.
        "frame": if opts.preprocess.rest_frame { "rest where the row's rest_frame is true, else observed" } else { "observed" },
    });
    vec![
        (META_VERSION.into(), crate::VERSION.into()),
        (META_GRID.into(), grid.to_string()),
        (META_PREPROCESS.into(), serde_json::to_string(&opts.preprocess).expect("config serialises")),
    ]
}

struct OpenShard {
    writer: SpectraShardWriter,
    first_input: usize,
    report: Vec<ReportRow>,
    counts: Counts,
}

/// Receives file outcomes in input order and cuts them into shards.
struct ShardSink {
    out: PathBuf,
    tag: String,
    fingerprint: String,
    inputs_fingerprint: String,
    metadata_common: Vec<(String, String)>,
    npix: usize,
    shard_size: usize,
    row_group_rows: usize,
    next_shard: usize,
    open: Option<OpenShard>,
    counts: Counts,
    shards: Vec<String>,
}

impl ShardSink {
    fn consume(&mut self, rx: Receiver<Vec<FileOutcome>>) -> Result<(), IngestError> {
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

    fn accept(&mut self, mut o: FileOutcome) -> Result<(), IngestError> {
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
    fn close(&mut self, end_input: usize) -> Result<(), IngestError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridPreset, LogGrid};

    /// Shards written by another starpipe version are refused, not resumed or mixed in: the
    /// version is part of the fingerprint every shard records.
    #[test]
    fn another_version_in_the_same_out_is_refused() {
        let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/real/lamost/image5xN");
        let out = tempfile::tempdir().unwrap();
        let opts = IngestOptions::new(
            Survey::Lamost,
            input,
            out.path(),
            PreprocessConfig::new(LogGrid::preset(GridPreset::Lamost)),
        )
        .with_progress(false)
        .with_threads(Some(1));
        run_ingest(&opts).unwrap();
        assert_ne!(fingerprint_for(&opts, "0.1.0"), fingerprint_for(&opts, "0.2.0"));
        let inputs = opts.shard.select(&discover(opts.survey, &opts.input).unwrap());
        let tag = opts.shard.tag();
        let same = find_resume_point(out.path(), &tag, &fingerprint(&opts), &inputs_fingerprint(&inputs));
        assert!(same.is_ok_and(|p| p.next_shard == 1 && p.next_input == inputs.len()), "the same version resumes");
        let other = fingerprint_for(&opts, "999.0.0");
        let err = find_resume_point(out.path(), &tag, &other, &inputs_fingerprint(&inputs)).err().unwrap();
        assert!(matches!(err, IngestError::ForeignShard { .. }), "{err}");
        assert!(err.to_string().contains("starpipe version"), "{err}");
    }
}
