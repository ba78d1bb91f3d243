//! `starpipe run [PIPELINE.toml]`: check the whole pipeline, then run its stages in dependency
//! order, skipping tasks whose done-record carries the current key.

use anyhow::{Context, Result, bail};
use clap::Args;
use starpipe::artifacts::ShardSpec;
use starpipe::pipeline::{DEMO, DoneRecord, FailedRecord, Pipeline, Task, Workspace};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline file (pipelines/*.toml). Without one, the built-in demo (pipelines/demo.toml):
    /// mock LAMOST and DESI surveys → ingest → pre-training → transfer strategies → embeddings →
    /// evaluation → inference → catalogue → report, in ./starpipe-demo.
    pipeline: Option<PathBuf>,
    /// Tasks per sharded stage (ingest, embed, infer); default: the pipeline's `shards`. Part of
    /// what a run computes: the same inputs with another shard count give other shard files.
    #[arg(long, value_name = "N", value_parser = crate::cli::args::shard_count)]
    shards: Option<usize>,
    /// Directory the stages' relative paths point into; default: the pipeline's `workdir`.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Run only this stage (repeatable); the stages it reads from must be complete.
    #[arg(long, value_name = "NAME")]
    stage: Vec<String>,
    /// With one sharded --stage: run only its task i of N (what a SLURM array task runs).
    #[arg(long, value_name = "i/N", requires = "stage")]
    shard: Option<ShardSpec>,
    /// Check the pipeline and print what would run, one line per stage; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: one line per task instead of per stage.
    #[arg(long, requires = "dry_run")]
    all: bool,
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
    pub fn load(file: Option<&Path>, shards: Option<usize>, workdir: Option<&Path>) -> Result<Loaded> {
        let pipeline = match file {
            Some(f) => Pipeline::from_file(f)?,
            None => Pipeline::parse("built-in demo (pipelines/demo.toml)", DEMO)?,
        };
        let shards = shards.unwrap_or(pipeline.shards);
        if shards == 0 {
            bail!("--shards must be at least 1");
        }
        for stage in &pipeline.stages {
            check_command_line(&pipeline, stage)?;
        }
        let cwd = std::env::current_dir().context("current directory")?;
        let workdir = cwd.join(workdir.unwrap_or(&pipeline.workdir));
        let ws = Workspace::new(pipeline, shards, workdir)?;
        Ok(Loaded { ws, file: file.map(|f| cwd.join(f)) })
    }

    pub fn stage_named(&self, name: &str) -> Result<usize> {
        self.stage_index(name).with_context(|| {
            let names: Vec<_> = self.pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            format!("no stage '{name}' in {} (stages: {})", self.pipeline.source, names.join(", "))
        })
    }
}

/// Parses a stage's command line with the real argument parser, so a misspelt flag or a bad
/// value is reported against the pipeline file before any stage runs.
fn check_command_line(p: &Pipeline, stage: &starpipe::pipeline::Stage) -> Result<()> {
    use clap::error::{ContextKind, ContextValue};
    let task = Task { stage: p.stages.iter().position(|s| s.name == stage.name).unwrap(), shard: None };
    let argv = task.argv(p);
    if let Err(e) = crate::cli::parse_command(&argv) {
        let arg = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => v.first().cloned(),
            _ => None,
        };
        let key = arg
            .as_deref()
            .and_then(|a| a.split_whitespace().next())
            .and_then(|f| f.strip_prefix("--"))
            .map(|f| f.replace('-', "_"));
        let rendered = e.render().to_string();
        let reason =
            rendered.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or("invalid command line").to_string();
        return Err(p.error_at(stage, key.as_deref(), format!("{reason} (starpipe {})", argv.join(" "))).into());
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
fn run_task(l: &Loaded, t: &Task) -> Result<()> {
    let p = &l.pipeline;
    let stem = t.stem(p);
    let argv = t.argv(p);
    let start = std::time::Instant::now();
    l.manifest.forget(&stem);
    let result = crate::cli::parse_command(&argv).map_err(anyhow::Error::from).and_then(crate::cli::dispatch);
    match result {
        Ok(()) => {
            let stage = &p.stages[t.stage];
            let outputs = match t.shard {
                Some(s) => starpipe::pipeline::outputs::sharded_task_outputs(stage, s, &l.workdir),
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
                starpipe_version: starpipe::VERSION.to_string(),
            };
            l.manifest.record_done(&stem, &record)?;
            Ok(())
        }
        Err(e) => {
            let record = FailedRecord {
                stage: p.stages[t.stage].name.clone(),
                task: t.shard.map(|s| s.to_string()),
                key: l.key(t),
                error: format!("{e:#}"),
                host: host(),
                slurm_job: slurm_job(),
            };
            l.manifest.record_failed(&stem, &record)?;
            Err(e.context(format!("stage {} failed (starpipe {})", t.label(p), t.argv(p).join(" "))))
        }
    }
}

pub fn run(a: RunArgs) -> Result<()> {
    let l = Loaded::load(a.pipeline.as_deref(), a.shards, a.workdir.as_deref())?;
    let p = &l.pipeline;
    let selected: Vec<usize> = if a.stage.is_empty() {
        l.plan.order.clone()
    } else {
        let mut s = a.stage.iter().map(|n| l.stage_named(n)).collect::<Result<Vec<_>>>()?;
        s.sort_by_key(|i| l.plan.order.iter().position(|o| o == i));
        s
    };
    if let Some(shard) = a.shard {
        if selected.len() != 1 || !p.stages[selected[0]].command.is_sharded() {
            bail!("--shard needs exactly one --stage of a sharded command (ingest, embed, infer)");
        }
        if shard.count != l.shards {
            bail!("--shard {shard} does not match --shards {} (the pipeline's tasks per stage)", l.shards);
        }
    }
    let mut tasks: Vec<Task> = Vec::new();
    for &i in &selected {
        tasks.extend(l.tasks(i).into_iter().filter(|t| a.shard.is_none() || t.shard == a.shard));
    }

    println!(
        "pipeline {} ({}): {} stage(s), {} task(s), workdir {}",
        p.name,
        p.source,
        selected.len(),
        tasks.len(),
        l.workdir.display()
    );
    let missing = starpipe::pipeline::plan::missing_inputs(p, &l.workdir);
    if a.dry_run {
        for e in &missing {
            println!("  warning: {e}");
        }
        if a.all {
            for t in &tasks {
                let state = if l.is_current(t) { "up to date" } else { "to run" };
                println!("  {:<34} {state:<11} starpipe {}", t.label(p), t.argv(p).join(" "));
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
            println!("  {:<24} {state:<32} starpipe {command}{sharded}", p.stages[i].name);
        }
        println!("  (--all lists every task)");
        return Ok(());
    }
    if let Some(first) = missing.first() {
        for e in &missing[1..] {
            eprintln!("error: {e}");
        }
        bail!("{first}");
    }
    std::fs::create_dir_all(&l.workdir).with_context(|| format!("creating workdir {}", l.workdir.display()))?;
    if p.stages.iter().any(|s| s.command.is_sharded()) {
        l.manifest.pin_shard_count(l.shards)?;
    }
    std::env::set_current_dir(&l.workdir).with_context(|| format!("entering workdir {}", l.workdir.display()))?;
    // A stage run on its own (a SLURM job) needs what it reads to have finished: a done-record for
    // every task upstream. Whether those are current was checked by whoever submitted it; checking
    // again here would mean hashing every upstream input file in every array task.
    let alone = !a.stage.is_empty();
    if alone {
        for &i in &selected {
            for &d in &l.plan.deps[i] {
                if selected.contains(&d) {
                    continue;
                }
                if let Some(t) = l.tasks(d).into_iter().find(|t| l.manifest.done(&t.stem(p)).is_none()) {
                    bail!(
                        "stage {} reads from stage {}, whose task {} is not complete (run it first)",
                        p.stages[i].name,
                        p.stages[d].name,
                        t.label(p)
                    );
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
            println!("{counter} {}: up to date", t.label(p));
            skipped += 1;
            continue;
        }
        println!("{counter} {}: starpipe {}", t.label(p), t.argv(p).join(" "));
        let start = std::time::Instant::now();
        let result = run_task(&l, t);
        l.invalidate();
        result?;
        println!("{counter} {}: done in {:.1} s", t.label(p), start.elapsed().as_secs_f64());
        ran += 1;
    }
    println!(
        "\npipeline {}: {ran} task(s) run, {skipped} up to date, {:.0} s; records in {}",
        p.name,
        run_start.elapsed().as_secs_f64(),
        l.manifest.dir().join("done").display()
    );
    let complete = l.plan.order.iter().all(|&i| l.tasks(i).iter().all(|t| l.is_current(t)));
    if complete {
        print_results(&l);
    }
    Ok(())
}

fn print_results(l: &Loaded) {
    use starpipe::pipeline::StageCommand;
    let p = &l.pipeline;
    for s in &p.stages {
        let what = match s.command {
            StageCommand::Catalog => "catalogue",
            StageCommand::Report => "report",
            StageCommand::Evaluate => "evaluation",
            _ => continue,
        };
        let mut path = l.workdir.join(s.out());
        if s.command == StageCommand::Report {
            path = path.join("index.html");
        }
        println!("{what} ({}): {}", s.name, path.display());
    }
    if !p.try_commands.is_empty() {
        println!("\nTry:");
        for c in &p.try_commands {
            println!("  {}", c.replace("{workdir}", &l.workdir.display().to_string()));
        }
    }
}
