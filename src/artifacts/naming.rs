//! File names of the tables stages hand each other. Names carry what a later stage needs to pair
//! files without opening them: an ingest task's tag and shard number; a per-shard output
//! (embeddings, predictions) is named after the spectra shard it was made from.
//!
//! ```text
//! ingest:  spectra-{tag}-{k:05}.parquet  report-{tag}-{k:05}.parquet  ingest-summary-{tag}.json
//! embed:   embeddings-{tag}-{k:05}.parquet        (from spectra-{tag}-{k:05}.parquet)
//! infer:   predictions-{tag}-{k:05}.parquet       (from spectra- or embeddings-{tag}-{k:05}.parquet)
//! ```

use std::path::Path;

/// The kinds of shard a directory of stage outputs holds, by file-name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKind {
    /// Normalised spectra (`ingest`).
    Spectra,
    /// Ingest report parts (`ingest`).
    Report,
    /// Encoder embeddings (`embed`), row for row the spectra shard they came from.
    Embeddings,
    /// Stellar parameters (`infer`), row for row their input shard.
    Predictions,
}

impl ShardKind {
    pub fn prefix(self) -> &'static str {
        match self {
            ShardKind::Spectra => "spectra-",
            ShardKind::Report => "report-",
            ShardKind::Embeddings => "embeddings-",
            ShardKind::Predictions => "predictions-",
        }
    }

    /// Whether `file_name` is a Parquet shard of this kind.
    pub fn matches(self, file_name: &str) -> bool {
        file_name.starts_with(self.prefix()) && file_name.ends_with(".parquet")
    }

    /// Whether an input record (`metadata::input_record`: `NAME (N bytes)`) names a shard of
    /// this kind.
    pub fn matches_record(self, record: &str) -> bool {
        record.starts_with(self.prefix())
    }
}

/// Spectra shard `k` of the ingest task tagged `tag` (`ShardSpec::tag`).
pub fn spectra_shard(tag: &str, k: usize) -> String {
    format!("spectra-{tag}-{k:05}.parquet")
}

/// The report part that accounts for the inputs of spectra shard `k` of task `tag`.
pub fn report_part(tag: &str, k: usize) -> String {
    format!("report-{tag}-{k:05}.parquet")
}

/// A glob of every report part of the ingest task tagged `tag` (for messages: where the reasons are).
pub fn report_parts_glob(tag: &str) -> String {
    format!("report-{tag}-*.parquet")
}

/// The summary an ingest task writes last.
pub fn ingest_summary(tag: &str) -> String {
    format!("ingest-summary-{tag}.json")
}

/// Whether `file_name` is one of the files the ingest task tagged `tag` writes: its spectra
/// shards, report parts and summary.
pub fn is_ingest_task_output(file_name: &str, tag: &str) -> bool {
    [ShardKind::Spectra, ShardKind::Report].iter().any(|k| file_name.starts_with(&format!("{}{tag}-", k.prefix())))
        || file_name == ingest_summary(tag)
}

/// The task count in an ingest output's name (`spectra-00001-of-00004-00000.parquet` → 4).
pub fn ingest_task_count(file_name: &str) -> Option<usize> {
    let rest = ["spectra-", "report-", "ingest-summary-"].iter().find_map(|p| file_name.strip_prefix(p))?;
    let (_, after) = rest.split_once("-of-")?;
    after.get(..5)?.parse().ok()
}

fn file_name(shard: &Path) -> &str {
    shard.file_name().and_then(|n| n.to_str()).unwrap_or("shard.parquet")
}

/// The embeddings shard made from a spectra shard.
pub fn embeddings_of(spectra_shard: &Path) -> String {
    let name = file_name(spectra_shard);
    format!("embeddings-{}", name.strip_prefix("spectra-").unwrap_or(name))
}

/// The predictions shard made from a spectra or embeddings shard. Both give the same name, so
/// predictions from either input join the spectra shard alike.
pub fn predictions_of(input_shard: &Path) -> String {
    let name = file_name(input_shard);
    let stem = name.strip_prefix("spectra-").or_else(|| name.strip_prefix("embeddings-")).unwrap_or(name);
    format!("predictions-{stem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_shard_outputs_are_named_after_their_spectra_shard() {
        let spectra = Path::new("out").join(spectra_shard("00001-of-00004", 7));
        assert_eq!(spectra.file_name().unwrap(), "spectra-00001-of-00004-00007.parquet");
        let emb = embeddings_of(&spectra);
        assert_eq!(emb, "embeddings-00001-of-00004-00007.parquet");
        assert_eq!(predictions_of(&spectra), predictions_of(Path::new(&emb)));
        assert!(ShardKind::Predictions.matches(&predictions_of(&spectra)));
        assert_eq!(ingest_task_count(&report_part("00001-of-00004", 0)), Some(4));
        assert!(is_ingest_task_output(&ingest_summary("00001-of-00004"), "00001-of-00004"));
        assert!(!is_ingest_task_output(&spectra_shard("00002-of-00004", 0), "00001-of-00004"));
    }
}
