//! Executing a pipeline on this machine: `starpipe run`. Every stage's command line is checked
//! with the real argument parser before any work; then tasks run in dependency order in this
//! process, each leaving a done- or failed-record; current tasks are skipped.
//!
//! The command line itself belongs to the binary: it hands the executor a [`Commands`] that
//! parses and runs one stage command line.

use super::{DEMO, DoneRecord, FailedRecord, Pipeline, PipelineError, Stage, Task, Workspace};
use crate::artifacts::ShardSpec;
use std::io::Write;
use std::path::{Path, PathBuf};

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// A stage command line the parser refused: why, and the flag concerned (without `--`), if any.
#[derive(Debug, Clone)]
pub struct BadCommandLine {
    pub reason: String,
    pub flag: Option<String>,
}

/// A stage that failed: its error for the failed-record (every cause) and for the user (one line).
#[derive(Debug, Clone)]
pub struct StageFailure {
    pub record: String,
    pub message: String,
}

/// What the executor needs from the command line: checking and running one stage command line
/// (the arguments after `starpipe`).
pub trait Commands {
    fn check(&self, argv: &[String]) -> std::result::Result<(), BadCommandLine>;
    fn run(&self, argv: &[String]) -> std::result::Result<(), StageFailure>;
}

/// What `starpipe run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these stages (their inputs must be complete); empty: all.
    pub stages: Vec<String>,
    /// With one sharded stage: only its task i of N (a SLURM array task).
    pub shard: Option<ShardSpec>,
    /// Print what would run; run nothing.
    pub dry_run: bool,
    /// With `dry_run`: one line per task.
    pub all: bool,
}

fn usage(message: impl Into<String>) -> PipelineError {
    PipelineError::Usage(message.into())
}

/// Progress goes to the terminal or a SLURM log; a closed stdout must not stop the run.
fn say(out: &mut dyn Write, line: String) {
    let _ = writeln!(out, "{line}");
}

/// A checked pipeline bound to its workdir, and the file it came from.
pub struct Loaded {
    pub ws: Workspace,
    /// The pipeline file, absolute (None for the built-in demo).
    pub file: Option<PathBuf>,
}

impl std::ops::Deref for Loaded {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        &self.ws
    }
}

impl Loaded {
    /// Reads the pipeline (or the demo) and checks every stage's command line.
    pub fn load(
        file: Option<&Path>,
        shards: Option<usize>,
        workdir: Option<&Path>,
        commands: &dyn Commands,
    ) -> Result<Loaded> {
        let pipeline = match file {
            Some(f) => Pipeline::from_file(f)?,
            None => Pipeline::parse("built-in demo (pipelines/demo.toml)", DEMO)?,
        };
        let shards = shards.unwrap_or(pipeline.shards);
        if shards == 0 {
            return Err(usage("--shards must be at least 1"));
        }
        for stage in &pipeline.stages {
            check_command_line(&pipeline, stage, commands)?;
        }
        let cwd = std::env::current_dir().map_err(|e| PipelineError::Io { path: ".".into(), source: e })?;
        let workdir = cwd.join(workdir.unwrap_or(&pipeline.workdir));
        let ws = Workspace::new(pipeline, shards, workdir)?;
        Ok(Loaded { ws, file: file.map(|f| cwd.join(f)) })
    }

    pub fn stage_named(&self, name: &str) -> Result<usize> {
        self.stage_index(name).ok_or_else(|| {
            let names: Vec<_> = self.pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            usage(format!("no stage '{name}' in {} (stages: {})", self.pipeline.source, names.join(", ")))
        })
    }
}

/// Parses a stage's command line with the real argument parser, so a misspelt flag or a bad
/// value is reported against the pipeline file before any stage runs.
fn check_command_line(p: &Pipeline, stage: &Stage, commands: &dyn Commands) -> Result<()> {
    let task = Task { stage: p.stages.iter().position(|s| s.name == stage.name).unwrap(), shard: None };
    let argv = task.argv(p);
    if let Err(e) = commands.check(&argv) {
        let key = e.flag.map(|f| f.replace('-', "_"));
        return Err(p.error_at(stage, key.as_deref(), format!("{} (starpipe {})", e.reason, argv.join(" "))));
    }
    Ok(())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn slurm_job() -> Option<String> {
    let var = |k| std::env::var(k).ok();
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID"), var("SLURM_JOB_ID")) {
        (Some(a), Some(t), _) => Some(format!("{a}_{t}")),
        (_, _, j) => j,
    }
}

/// Runs one task in this process (the current directory is the workdir).
fn run_task(l: &Loaded, t: &Task, commands: &dyn Commands) -> Result<()> {
    let p = &l.pipeline;
    let stem = t.stem(p);
    let argv = t.argv(p);
    let start = std::time::Instant::now();
    l.manifest.forget(&stem);
    let result = commands.run(&argv);
    match result {
        Ok(()) => {
            let stage = &p.stages[t.stage];
            let outputs = match t.shard {
                Some(s) => super::outputs::sharded_task_outputs(stage, s, &l.workdir),
                None => l.manifest.list_outputs(stage.out()),
            };
            let record = DoneRecord {
                stage: stage.name.clone(),
                task: t.shard.map(|s| s.to_string()),
                key: l.key(t),
                command: argv,
                outputs,
                seconds: start.elapsed().as_secs_f64(),
                host: host(),
                slurm_job: slurm_job(),
                starpipe_version: crate::VERSION.to_string(),
            };
            l.manifest.record_done(&stem, &record)?;
            Ok(())
        }
        Err(e) => {
            let record = FailedRecord {
                stage: p.stages[t.stage].name.clone(),
                task: t.shard.map(|s| s.to_string()),
                key: l.key(t),
                error: e.record,
                host: host(),
                slurm_job: slurm_job(),
            };
            l.manifest.record_failed(&stem, &record)?;
            Err(PipelineError::StageFailed { task: t.label(p), command: t.argv(p).join(" "), message: e.message })
        }
    }
}

/// Runs the stages (or the tasks) `a` selects, in dependency order, skipping current tasks; with
/// `dry_run`, prints what would run. Progress lines go to `out`, extra errors to `err`. Enters the
/// workdir: stage command lines are relative to it.
pub fn run(
    l: &Loaded,
    a: &RunOptions,
    commands: &dyn Commands,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let p = &l.pipeline;
    let selected: Vec<usize> = if a.stages.is_empty() {
        l.plan.order.clone()
    } else {
        let mut s = a.stages.iter().map(|n| l.stage_named(n)).collect::<Result<Vec<_>>>()?;
        s.sort_by_key(|i| l.plan.order.iter().position(|o| o == i));
        s
    };
    if let Some(shard) = a.shard {
        if selected.len() != 1 || !p.stages[selected[0]].command.is_sharded() {
            return Err(usage("--shard needs exactly one --stage of a sharded command (ingest, embed, infer)"));
        }
        if shard.count != l.shards {
            return Err(usage(format!(
                "--shard {shard} does not match --shards {} (the pipeline's tasks per stage)",
                l.shards
            )));
        }
    }
    let mut tasks: Vec<Task> = Vec::new();
    for &i in &selected {
        tasks.extend(l.tasks(i).into_iter().filter(|t| a.shard.is_none() || t.shard == a.shard));
    }

    say(
        out,
        format!(
            "pipeline {} ({}): {} stage(s), {} task(s), workdir {}",
            p.name,
            p.source,
            selected.len(),
            tasks.len(),
            l.workdir.display()
        ),
    );
    let missing = super::plan::missing_inputs(p, &l.workdir);
    if a.dry_run {
        for e in &missing {
            say(out, format!("  warning: {e}"));
        }
        if a.all {
            for t in &tasks {
                let state = if l.is_current(t) { "up to date" } else { "to run" };
                say(out, format!("  {:<34} {state:<11} starpipe {}", t.label(p), t.argv(p).join(" ")));
            }
            return Ok(());
        }
        // One line per stage: 512 shards would otherwise print 512 lines per sharded stage.
        for &i in &selected {
            let stage_tasks: Vec<&Task> = tasks.iter().filter(|t| t.stage == i).collect();
            let current = stage_tasks.iter().filter(|t| l.is_current(t)).count();
            let to_run = stage_tasks.len() - current;
            let state = match (current, to_run) {
                (_, 0) => "up to date".to_string(),
                (0, n) => format!("{n} task(s) to run"),
                (c, n) => format!("{n} task(s) to run, {c} up to date"),
            };
            let command = p.stages[i].argv().join(" ");
            let sharded = if stage_tasks.len() > 1 || p.stages[i].command.is_sharded() {
                format!(" --shard i/{}", l.shards)
            } else {
                String::new()
            };
            say(out, format!("  {:<24} {state:<32} starpipe {command}{sharded}", p.stages[i].name));
        }
        say(out, "  (--all lists every task)".into());
        return Ok(());
    }
    if let Some(first) = missing.first() {
        for e in &missing[1..] {
            say(err, format!("error: {e}"));
        }
        return Err(usage(first.to_string()));
    }
    std::fs::create_dir_all(&l.workdir).map_err(|e| PipelineError::Io { path: l.workdir.clone(), source: e })?;
    if p.stages.iter().any(|s| s.command.is_sharded()) {
        l.manifest.pin_shard_count(l.shards)?;
    }
    std::env::set_current_dir(&l.workdir).map_err(|e| PipelineError::Io { path: l.workdir.clone(), source: e })?;
    // A stage run on its own (a SLURM job) needs what it reads to have finished: a done-record for
    // every task upstream. Whether those are current was checked by whoever submitted it; checking
    // again here would mean hashing every upstream input file in every array task.
    let alone = !a.stages.is_empty();
    if alone {
        for &i in &selected {
            for &d in &l.plan.deps[i] {
                if selected.contains(&d) {
                    continue;
                }
                if let Some(t) = l.tasks(d).into_iter().find(|t| l.manifest.done(&t.stem(p)).is_none()) {
                    return Err(usage(format!(
                        "stage {} reads from stage {}, whose task {} is not complete (run it first)",
                        p.stages[i].name,
                        p.stages[d].name,
                        t.label(p)
                    )));
                }
            }
        }
    }
    let run_start = std::time::Instant::now();
    let (mut ran, mut skipped) = (0, 0);
    for (k, t) in tasks.iter().enumerate() {
        let counter = format!("[{}/{}]", k + 1, tasks.len());
        let current = if alone { l.is_done_with_current_key(t) } else { l.is_current(t) };
        if current {
            say(out, format!("{counter} {}: up to date", t.label(p)));
            skipped += 1;
            continue;
        }
        say(out, format!("{counter} {}: starpipe {}", t.label(p), t.argv(p).join(" ")));
        let start = std::time::Instant::now();
        let result = run_task(l, t, commands);
        l.invalidate();
        result?;
        say(out, format!("{counter} {}: done in {:.1} s", t.label(p), start.elapsed().as_secs_f64()));
        ran += 1;
    }
    say(
        out,
        format!(
            "\npipeline {}: {ran} task(s) run, {skipped} up to date, {:.0} s; records in {}",
            p.name,
            run_start.elapsed().as_secs_f64(),
            l.manifest.dir().join("done").display()
        ),
    );
    let complete = l.plan.order.iter().all(|&i| l.tasks(i).iter().all(|t| l.is_current(t)));
    if complete {
        print_results(l, out);
    }
    Ok(())
}

fn print_results(l: &Loaded, out: &mut dyn Write) {
    let p = &l.pipeline;
    for s in &p.stages {
        let Some((what, file)) = s.command.kind().result else { continue };
        let mut path = l.workdir.join(s.out());
        if !file.is_empty() {
            path = path.join(file);
        }
        say(out, format!("{what} ({}): {}", s.name, path.display()));
    }
    if !p.try_commands.is_empty() {
        say(out, "\nTry:".into());
        for c in &p.try_commands {
            say(out, format!("  {}", c.replace("{workdir}", &l.workdir.display().to_string())));
        }
    }
}
