//! The run manifest: one done-record per finished task under `WORKDIR/.starpipe/done/`, holding
//! the task's key (see [`super::workspace`] for what it hashes and when a task is current).
//!
//! Records are written by temporary name + rename, and only after the task's command returned,
//! so a killed task has no record and runs again (its command resumes where it can). Each task
//! writes only its own record, so the tasks of a job array never touch the same file.

use super::PipelineError;
use super::spec::Pipeline;
use crate::artifacts::ShardSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// One unit of work: a stage, or one `--shard i/N` task of a sharded stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub stage: usize,
    pub shard: Option<ShardSpec>,
}

impl Task {
    /// The tasks of stage `i` for `shards` tasks per sharded stage.
    pub fn of_stage(p: &Pipeline, i: usize, shards: usize) -> Vec<Task> {
        if p.stages[i].command.is_sharded() {
            (0..shards).map(|k| Task { stage: i, shard: Some(ShardSpec { index: k, count: shards }) }).collect()
        } else {
            vec![Task { stage: i, shard: None }]
        }
    }

    /// `ingest-lamost` or `ingest-lamost.00001-of-00004`: names the task's record files.
    pub fn stem(&self, p: &Pipeline) -> String {
        match self.shard {
            Some(s) => format!("{}.{}", p.stages[self.stage].name, s.tag()),
            None => p.stages[self.stage].name.clone(),
        }
    }

    /// `ingest-lamost` or `ingest-lamost [1/4]`, for people.
    pub fn label(&self, p: &Pipeline) -> String {
        match self.shard {
            Some(s) => format!("{} [{s}]", p.stages[self.stage].name),
            None => p.stages[self.stage].name.clone(),
        }
    }

    /// The full command line after `starpipe`.
    pub fn argv(&self, p: &Pipeline) -> Vec<String> {
        let mut argv = p.stages[self.stage].argv();
        if let Some(s) = self.shard {
            argv.push("--shard".into());
            argv.push(s.to_string());
        }
        argv
    }
}

/// A file a finished task wrote, relative to the workdir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: String,
    pub bytes: u64,
}

/// What a finished task leaves in `.starpipe/done/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneRecord {
    pub stage: String,
    pub task: Option<String>,
    pub key: String,
    pub command: Vec<String>,
    /// Files the task wrote: everything under the stage's `out` for an unsharded stage, the task's
    /// own shards for a sharded one (`outputs::sharded_task_outputs`).
    pub outputs: Vec<OutputFile>,
    pub seconds: f64,
    pub host: String,
    pub slurm_job: Option<String>,
    pub starpipe_version: String,
}

/// What a failed task leaves in `.starpipe/failed/` (removed when it later succeeds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedRecord {
    pub stage: String,
    pub task: Option<String>,
    pub key: String,
    pub error: String,
    pub host: String,
    pub slurm_job: Option<String>,
}

/// The manifest directory of one workdir.
#[derive(Debug, Clone)]
pub struct Manifest {
    workdir: PathBuf,
    dir: PathBuf,
}

fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), PipelineError> {
    let io = |e| PipelineError::Io { path: path.to_path_buf(), source: e };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let json = serde_json::to_string_pretty(value).expect("records serialise");
    crate::io::write_bytes_atomically(path, json.as_bytes()).map_err(PipelineError::from)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

impl Manifest {
    pub fn new(workdir: &Path) -> Self {
        Manifest { workdir: workdir.to_path_buf(), dir: workdir.join(".starpipe") }
    }

    /// `.starpipe` under the workdir: records, sbatch scripts, job logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn done_path(&self, stem: &str) -> PathBuf {
        self.dir.join("done").join(format!("{stem}.json"))
    }

    fn failed_path(&self, stem: &str) -> PathBuf {
        self.dir.join("failed").join(format!("{stem}.json"))
    }

    pub fn done(&self, stem: &str) -> Option<DoneRecord> {
        read_json(&self.done_path(stem))
    }

    pub fn failed(&self, stem: &str) -> Option<FailedRecord> {
        read_json(&self.failed_path(stem))
    }

    /// Whether the task finished with this key and its recorded outputs are intact.
    pub fn is_current(&self, stem: &str, key: &str) -> bool {
        self.done(stem).is_some_and(|r| {
            r.key == key
                && r.outputs.iter().all(|o| {
                    std::fs::metadata(self.workdir.join(&o.path)).is_ok_and(|m| m.is_file() && m.len() == o.bytes)
                })
        })
    }

    pub fn record_done(&self, stem: &str, record: &DoneRecord) -> Result<(), PipelineError> {
        write_json_atomically(&self.done_path(stem), record)?;
        let _ = std::fs::remove_file(self.failed_path(stem));
        Ok(())
    }

    pub fn record_failed(&self, stem: &str, record: &FailedRecord) -> Result<(), PipelineError> {
        write_json_atomically(&self.failed_path(stem), record)
    }

    /// Pins the workdir to one shard count. Shard files are named after their task (`…-of-N…`),
    /// so a second count would put two copies of every spectrum side by side in the same
    /// directories; a different count is refused instead.
    pub fn pin_shard_count(&self, shards: usize) -> Result<(), PipelineError> {
        let path = self.dir.join("shards.json");
        if let Some(v) = read_json::<serde_json::Value>(&path) {
            let earlier = v["shards"].as_u64().unwrap_or(0) as usize;
            if earlier != shards {
                return Err(PipelineError::ShardCount { workdir: self.workdir.clone(), earlier, now: shards });
            }
            return Ok(());
        }
        write_json_atomically(&path, &serde_json::json!({ "shards": shards }))
    }

    /// Forgets a task's done-record (it is about to run again).
    pub fn forget(&self, stem: &str) {
        let _ = std::fs::remove_file(self.done_path(stem));
    }

    /// The files under `out` (a file or directory, relative to the workdir), sorted.
    pub fn list_outputs(&self, out: &str) -> Vec<OutputFile> {
        let root = self.workdir.join(out);
        let mut files: Vec<OutputFile> = walkdir::WalkDir::new(&root)
            .sort_by_file_name()
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| {
                let rel = e.path().strip_prefix(&self.workdir).ok()?.to_string_lossy().into_owned();
                Some(OutputFile { path: rel, bytes: e.metadata().ok()?.len() })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }
}

pub(super) fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn stat_line(h: &mut Sha256, name: &str, path: &Path) {
    if let Ok(m) = std::fs::metadata(path) {
        let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        h.update(format!("{name}\t{}\t{}\n", m.len(), mtime.map_or(0, |d| d.as_nanos())).as_bytes());
    }
}

/// Size and modification time of every file under an external input (not written by a stage).
pub(super) fn fingerprint_path(h: &mut Sha256, workdir: &Path, value: &str) {
    let path = workdir.join(value);
    if path.is_file() {
        stat_line(h, value, &path);
    } else if path.is_dir() {
        for e in walkdir::WalkDir::new(&path).sort_by_file_name().into_iter().flatten() {
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(workdir).unwrap_or(e.path()).to_string_lossy().into_owned();
                stat_line(h, &rel, e.path());
            }
        }
    }
}
