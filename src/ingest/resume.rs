//! Resume: a task's shards record the fingerprint of its settings and of its inputs; a re-run
//! finds the first unfinished shard, removes what is half-written, and refuses an `--out` holding
//! another ingest (other settings, version, or task count).

use super::discover::Input;
use super::options::{IngestError, IngestOptions};
use super::summary::Counts;
use crate::artifacts::metadata::spectra::{
    COUNTS as META_COUNTS, FINGERPRINT as META_FINGERPRINT, INPUTS as META_INPUTS,
    INPUTS_FINGERPRINT as META_INPUTS_FINGERPRINT,
};
use crate::artifacts::naming;
use crate::io::read_key_value_metadata;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) fn fingerprint(opts: &IngestOptions) -> String {
    fingerprint_for(opts, crate::VERSION)
}

/// The fingerprint a starpipe of `version` would record for these settings.
pub(super) fn fingerprint_for(opts: &IngestOptions, version: &str) -> String {
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
pub(super) fn inputs_fingerprint(inputs: &[Input]) -> String {
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

pub(super) fn shard_path(out: &Path, tag: &str, k: usize) -> PathBuf {
    out.join(naming::spectra_shard(tag, k))
}

pub(super) fn report_path(out: &Path, tag: &str, k: usize) -> PathBuf {
    out.join(naming::report_part(tag, k))
}

/// Where a previous run of the same task stopped.
pub(super) struct ResumePoint {
    pub(super) next_shard: usize,
    pub(super) next_input: usize,
    pub(super) counts: Counts,
    pub(super) shards: Vec<String>,
}

pub(super) fn find_resume_point(
    out: &Path,
    tag: &str,
    expected: &str,
    inputs_fp: &str,
) -> Result<ResumePoint, IngestError> {
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
pub(super) fn remove_unfinished(out: &Path, tag: &str, first_unfinished: usize) {
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
pub(super) fn refuse_other_shard_count(out: &Path, count: usize) -> Result<(), IngestError> {
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
pub(super) fn remove_task_outputs(out: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        if naming::is_ingest_task_output(&e.file_name().to_string_lossy(), tag) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes temporary files a killed run of this task left behind.
pub(super) fn remove_stale_tmp(out: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") && name.contains(tag) {
            tracing::info!(file = %e.path().display(), "removing temporary file of an interrupted run");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridPreset, LogGrid};
    use crate::ingest::discover::{Survey, discover};
    use crate::ingest::run::run_ingest;
    use crate::preprocess::PreprocessConfig;

    /// Shards written by another starpipe version are refused, not resumed or mixed in: the
    /// version is part of the fingerprint every shard records.
    #[test]
    pub(super) fn another_version_in_the_same_out_is_refused() {
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
