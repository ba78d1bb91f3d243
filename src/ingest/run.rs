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
use super::desi::ingest_desi_file;
use super::discover::{Input, Survey, discover};
use super::lamost::ingest_lamost_file;
use super::options::{IngestError, IngestOptions};
use super::record::{FileOutcome, ReportRow, Status};
use super::resume::*;
use super::sink::*;
use super::summary::*;
use crate::artifacts::metadata::VERSION as META_VERSION;
use crate::artifacts::metadata::spectra::{GRID as META_GRID, PREPROCESS as META_PREPROCESS};
use crate::artifacts::naming;
use crate::preprocess::{DESI_SEGMENT_BREAKS, LAMOST_SEGMENT_BREAKS, Preprocessor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::IsTerminal;
use std::sync::mpsc::sync_channel;

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
