//! A checked pipeline bound to a workdir and a shard count: its tasks, their keys, and whether
//! each is current.
//!
//! A task's key hashes the starpipe version, its command line, the keys of the tasks it reads from
//! — as their done-records hold them, computed only for tasks without a record — and the size and
//! modification time of its external input files (an ingest task: only its own share of the
//! files). So a SLURM array task hashes its own inputs only, not every input file of every other
//! task. A task is current when its record carries its key, its recorded output files are still
//! there (same sizes), and every task upstream is current; any change upstream makes every task
//! downstream stale.

use super::PipelineError;
use super::manifest::{Manifest, Task, fingerprint_path, hex, stat_line};
use super::plan::{Plan, is_within, normalize};
use super::spec::{Pipeline, StageCommand};
use crate::artifacts::ShardSpec;
use crate::ingest::Survey;
use crate::ingest::discover::Input;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

pub struct Workspace {
    pub pipeline: Pipeline,
    pub plan: Plan,
    /// Tasks per sharded stage.
    pub shards: usize,
    /// Absolute.
    pub workdir: PathBuf,
    pub manifest: Manifest,
    /// Every stage's `out`, normalised (what tells stage outputs from external inputs).
    outs: Vec<String>,
    /// keys[stage][task], filled on demand; cleared whenever a done-record changes.
    keys: RefCell<Vec<Vec<Option<String>>>>,
    /// Memo of `is_current`, cleared with the keys.
    current: RefCell<HashMap<(usize, usize), bool>>,
    /// An ingest stage's discovered input files (walked once, however many tasks).
    discovered: RefCell<HashMap<usize, Option<Vec<Input>>>>,
}

impl Workspace {
    /// Orders the stages (refusing cycles and nested outputs) and binds them to `workdir`.
    pub fn new(pipeline: Pipeline, shards: usize, workdir: PathBuf) -> Result<Self, PipelineError> {
        let plan = Plan::new(&pipeline)?;
        let outs = pipeline.stages.iter().map(|s| normalize(s.out())).collect();
        let keys =
            pipeline.stages.iter().map(|s| vec![None; if s.command.is_sharded() { shards } else { 1 }]).collect();
        Ok(Workspace {
            manifest: Manifest::new(&workdir),
            pipeline,
            plan,
            shards,
            workdir,
            outs,
            keys: RefCell::new(keys),
            current: RefCell::new(HashMap::new()),
            discovered: RefCell::new(HashMap::new()),
        })
    }

    pub fn tasks(&self, stage: usize) -> Vec<Task> {
        Task::of_stage(&self.pipeline, stage, self.shards)
    }

    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.pipeline.stages.iter().position(|s| s.name == name)
    }

    /// The task's key.
    pub fn key(&self, t: &Task) -> String {
        let (stage, index) = (t.stage, t.shard.map_or(0, |s| s.index));
        if let Some(k) = &self.keys.borrow()[stage][index] {
            return k.clone();
        }
        let p = &self.pipeline;
        let mut upstream: Vec<String> = Vec::new();
        for &d in &self.plan.deps[stage] {
            for u in self.tasks(d) {
                match self.manifest.done(&u.stem(p)) {
                    Some(r) => upstream.push(r.key),
                    None => upstream.push(self.key(&u)),
                }
            }
        }
        upstream.sort_unstable();
        let s = &p.stages[stage];
        let mut h = Sha256::new();
        let head = serde_json::json!({ "starpipe": crate::VERSION, "argv": t.argv(p), "upstream": upstream });
        h.update(head.to_string().as_bytes());
        for param in s.params.iter().filter(|q| q.key != "out") {
            for v in param.strings() {
                let n = normalize(v);
                if self.outs.iter().any(|o| is_within(&n, o)) {
                    continue; // made by a stage: its key is in `upstream`
                }
                let own_share = s.command == StageCommand::Ingest && param.key == "input";
                if own_share && t.shard.is_some_and(|sh| self.fingerprint_ingest_share(&mut h, stage, sh)) {
                    continue;
                }
                fingerprint_path(&mut h, &self.workdir, v);
            }
        }
        let key = hex(h);
        self.keys.borrow_mut()[stage][index] = Some(key.clone());
        key
    }

    /// Done with its current key, outputs intact, and everything upstream current too.
    pub fn is_current(&self, t: &Task) -> bool {
        let id = (t.stage, t.shard.map_or(0, |s| s.index));
        if let Some(&c) = self.current.borrow().get(&id) {
            return c;
        }
        let c = self.is_done_with_current_key(t)
            && self.plan.deps[t.stage].iter().all(|&d| self.tasks(d).iter().all(|u| self.is_current(u)));
        self.current.borrow_mut().insert(id, c);
        c
    }

    /// Done with its current key and outputs intact, whatever upstream: what a task checks when
    /// it runs alone (an array task), trusting the submitter to have checked upstream.
    pub fn is_done_with_current_key(&self, t: &Task) -> bool {
        self.manifest.is_current(&t.stem(&self.pipeline), &self.key(t))
    }

    /// Has a done-record for its current command line: what `slurm status` shows, without hashing
    /// input files (for a release of millions of files that would take minutes per call).
    pub fn has_record_for_command(&self, t: &Task) -> bool {
        self.manifest.done(&t.stem(&self.pipeline)).is_some_and(|r| r.command == t.argv(&self.pipeline))
    }

    /// Forgets computed keys and currency (a done-record changed); discovered input lists stay.
    pub fn invalidate(&self) {
        for stage in self.keys.borrow_mut().iter_mut() {
            stage.iter_mut().for_each(|k| *k = None);
        }
        self.current.borrow_mut().clear();
    }

    /// An ingest task's own input files only, so that fixing one file re-runs only its task.
    fn fingerprint_ingest_share(&self, h: &mut Sha256, stage: usize, shard: ShardSpec) -> bool {
        let mut cache = self.discovered.borrow_mut();
        let all = cache.entry(stage).or_insert_with(|| {
            let s = &self.pipeline.stages[stage];
            let survey = match s.param("survey").and_then(|p| p.strings().next()) {
                Some("lamost") => Survey::Lamost,
                Some("desi") => Survey::Desi,
                _ => return None,
            };
            let input = s.param("input").and_then(|p| p.strings().next())?;
            crate::ingest::discover::discover(survey, &self.workdir.join(input)).ok()
        });
        let Some(all) = all else { return false };
        for i in shard.select(all) {
            stat_line(h, &i.display, &i.path);
        }
        true
    }
}
