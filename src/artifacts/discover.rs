//! Finding the shards a stage reads: directories of a stage's output, or shard files named one
//! by one.

use super::naming::ShardKind;
use crate::io::FileError;
use std::path::{Path, PathBuf};

/// The shards of `kind` in `inputs`, in order: each directory's matching files sorted by name
/// (an empty directory is an error), each file as given.
pub fn shard_paths(inputs: &[PathBuf], kind: ShardKind) -> Result<Vec<PathBuf>, FileError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| FileError::io(input.clone(), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| kind.matches(p.file_name().and_then(|n| n.to_str()).unwrap_or("")))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(FileError::bad(
                    input.clone(),
                    format!("no {}*.parquet shards in this directory", kind.prefix()),
                ));
            }
            out.extend(found);
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            return Err(FileError::bad(input.clone(), "no such file or directory"));
        }
    }
    Ok(out)
}

/// Whether a model stage's inputs are spectra or embedding shards: the first Parquet shard
/// found decides.
pub fn model_input_kind(inputs: &[PathBuf]) -> Result<ShardKind, FileError> {
    for input in inputs {
        let names: Vec<String> = if input.is_dir() {
            let mut v: Vec<String> = std::fs::read_dir(input)
                .map_err(|e| FileError::io(input.clone(), e))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
                .collect();
            v.sort();
            v
        } else {
            vec![input.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()]
        };
        for n in &names {
            for kind in [ShardKind::Spectra, ShardKind::Embeddings] {
                if kind.matches(n) {
                    return Ok(kind);
                }
            }
        }
    }
    let others = match inputs.len() {
        0 | 1 => String::new(),
        n => format!(" (nor in the {} other inputs)", n - 1),
    };
    Err(FileError::bad(
        inputs.first().cloned().unwrap_or_default(),
        format!("no spectra-*.parquet or embeddings-*.parquet shards{others}"),
    ))
}

/// The first shard of `kind` in a directory (by name), if any.
pub fn first_shard(dir: &Path, kind: ShardKind) -> Result<Option<PathBuf>, FileError> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| FileError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| kind.matches(p.file_name().and_then(|n| n.to_str()).unwrap_or("")))
        .min())
}
