//! The files one task of a sharded stage writes. The tasks of a stage share their `out`
//! directory, so each task's done-record lists its own files (with sizes): a shard deleted or
//! truncated later makes exactly its task stale.

use super::manifest::OutputFile;
use super::spec::{Stage, StageCommand};
use crate::artifacts::{ShardKind, ShardSpec, discover, naming};
use std::path::{Path, PathBuf};

/// The output files of task `shard` of a sharded stage, as they are now (missing ones left out).
pub fn sharded_task_outputs(stage: &Stage, shard: ShardSpec, workdir: &Path) -> Vec<OutputFile> {
    let out = stage.out();
    let names: Vec<String> = match stage.command {
        StageCommand::Ingest => {
            let tag = shard.tag();
            let mut v: Vec<String> = std::fs::read_dir(workdir.join(out))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| naming::is_ingest_task_output(n, &tag))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
        StageCommand::Embed | StageCommand::Infer => {
            let inputs: Vec<PathBuf> =
                stage.param("spectra").map(|p| p.strings().map(|s| workdir.join(s)).collect()).unwrap_or_default();
            let kind = match stage.command {
                StageCommand::Embed => Ok(ShardKind::Spectra),
                _ => discover::model_input_kind(&inputs),
            };
            let shards = kind.and_then(|k| discover::shard_paths(&inputs, k)).unwrap_or_default();
            shard
                .select(&shards)
                .iter()
                .map(|s| match stage.command {
                    StageCommand::Embed => naming::embeddings_of(s),
                    _ => naming::predictions_of(s),
                })
                .collect()
        }
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter_map(|n| {
            let rel = format!("{}/{n}", super::plan::normalize(out));
            let bytes = std::fs::metadata(workdir.join(&rel)).ok()?.len();
            Some(OutputFile { path: rel, bytes })
        })
        .collect()
}
