//! The shape every per-shard stage shares (`infer`, `embed`): one output shard per input shard,
//! named after it; an output whose recorded provenance matches is kept (resume); a shard that
//! fails is reported and the others are still written; outputs appear only complete.

use super::{FileError, Result};
use crate::io::{read_key_value_metadata, tmp_path};
use std::path::{Path, PathBuf};

/// How the inputs of a per-shard stage were accounted for.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShardsSummary {
    pub shards_written: usize,
    pub shards_skipped: usize,
    pub spectra: usize,
    /// Shards that could not be processed, with the reason; the others are still written.
    pub failed: Vec<(PathBuf, String)>,
}

/// Runs `work(input, output, provenance) -> rows` for every input shard whose output is missing or
/// was made from something else. `provenance` is written into each output's metadata by `work`
/// and compared on re-runs.
/// Generic in the stage's error type `E`, which takes this module's errors.
pub fn run_per_shard<E: From<FileError> + std::fmt::Display>(
    shards: &[PathBuf],
    out_dir: &Path,
    output_name: impl Fn(&Path) -> String,
    provenance: impl Fn(&Path) -> std::result::Result<Vec<(String, String)>, E>,
    mut work: impl FnMut(&Path, &Path, Vec<(String, String)>) -> std::result::Result<usize, E>,
    progress: &indicatif::ProgressBar,
) -> std::result::Result<ShardsSummary, E> {
    let mut names = std::collections::HashMap::new();
    for shard in shards {
        if let Some(other) = names.insert(output_name(shard), shard) {
            return Err(FileError::bad(
                shard,
                format!("would write the same output shard as {} (run once per survey directory)", other.display()),
            )
            .into());
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| FileError::io(out_dir, e))?;
    let mut summary = ShardsSummary::default();
    progress.set_length(shards.len() as u64);
    let mut heartbeat = crate::progress::Heartbeat::default();
    for shard in shards {
        heartbeat.tick(progress, "shards done");
        let out = out_dir.join(output_name(shard));
        let meta = provenance(shard)?;
        if out.exists() && read_key_value_metadata(&out).is_ok_and(|kv| meta.iter().all(|m| kv.contains(m))) {
            tracing::info!(shard = %out.display(), "made from the same input and model earlier; kept");
            summary.shards_skipped += 1;
            progress.inc(1);
            continue;
        }
        match work(shard, &out, meta) {
            Ok(n) => {
                summary.spectra += n;
                summary.shards_written += 1;
            }
            Err(e) => {
                // One unreadable shard must not cost the others: report it and go on.
                tracing::error!(shard = %shard.display(), error = %e, "shard not processed");
                let _ = std::fs::remove_file(tmp_path(&out));
                summary.failed.push((shard.clone(), e.to_string()));
            }
        }
        progress.inc(1);
    }
    Ok(summary)
}

/// The file name and size of an input shard, as provenance records it
/// ([`crate::artifacts::metadata::input_record`]).
pub fn input_record(shard: &Path) -> Result<String> {
    crate::artifacts::metadata::input_record(shard).map_err(|e| FileError::io(shard, e))
}

/// The Parquet writer of one output shard, at its temporary name: zstd, `row_group_rows` rows per
/// row group, the provenance `meta` as key-value metadata (compared on re-runs).
pub fn shard_writer(
    tmp: &Path,
    schema: arrow::datatypes::SchemaRef,
    meta: Vec<(String, String)>,
    row_group_rows: usize,
) -> Result<parquet::arrow::ArrowWriter<std::fs::File>> {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let file = std::fs::File::create(tmp).map_err(|e| FileError::io(tmp, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_key_value_metadata(Some(meta.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()))
        .build();
    parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))
        .map_err(|e| FileError::Parquet { path: tmp.to_path_buf(), source: e })
}
