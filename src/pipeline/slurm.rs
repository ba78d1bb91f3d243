//! A pipeline as SLURM jobs (`starpipe slurm submit|status|resubmit`). Each sharded stage is one
//! job array (task i runs `starpipe run PIPELINE --stage S --shard i/N`), each other stage one job;
//! a job waits for the jobs of the stages it reads from (`--dependency=afterok`, and
//! `--kill-on-invalid-dep=yes` so a failed task cancels what depends on it instead of leaving it
//! pending). Only tasks without a current done-record are submitted, so `resubmit` re-runs just
//! the failed or missing shards and the stages after them.
//!
//! Scripts, job logs and the submission table live in WORKDIR/.starpipe/slurm/.

use super::executor::Loaded;
use super::{PipelineError, Task};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// A refusal in words (what `PipelineError::Usage` carries).
macro_rules! bail {
    ($($t:tt)*) => { return Err(PipelineError::Usage(format!($($t)*))) };
}

/// Progress and warnings: a closed stdout or stderr must not stop a submission half way.
macro_rules! say {
    ($w:expr, $($t:tt)*) => {{ let _ = writeln!($w, $($t)*); }};
}

/// `what: cause` as the error, for failures of the tools and files SLURM needs.
trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| PipelineError::Usage(format!("{what}: {e}")))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| PipelineError::Usage(format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| PipelineError::Usage(what.to_string()))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| PipelineError::Usage(what().to_string()))
    }
}

/// What `starpipe slurm submit` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Print the scripts and sbatch command lines; submit nothing.
    pub dry_run: bool,
    /// At most this many tasks of an array at once (`--array=…%K`).
    pub max_running: Option<usize>,
    /// sbatch options for every job, after the pipeline's own.
    pub sbatch: Vec<String>,
    /// The pipeline, shard count and workdir as command-line arguments, for the hint printed.
    pub target_args: String,
}

/// One sbatch call.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submission {
    attempt: u32,
    stage: String,
    job_id: String,
    /// Array task ids (sharded stages).
    tasks: Option<Vec<usize>>,
    script: PathBuf,
    shards: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Submissions {
    submissions: Vec<Submission>,
}

impl Submissions {
    fn path(l: &Loaded) -> PathBuf {
        l.manifest.dir().join("slurm").join("jobs.json")
    }

    fn read(l: &Loaded) -> Submissions {
        std::fs::read_to_string(Self::path(l)).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default()
    }

    fn write(&self, l: &Loaded) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("submissions serialise");
        Ok(crate::io::write_bytes_atomically(&Self::path(l), json.as_bytes())?)
    }

    /// The latest submission of a stage that covers `task` (None: the stage's job).
    fn latest(&self, stage: &str, task: Option<usize>) -> Option<&Submission> {
        self.submissions.iter().rev().find(|s| {
            s.stage == stage && (task.is_none() || s.tasks.as_ref().is_some_and(|t| t.contains(&task.unwrap())))
        })
    }
}

/// Quoted for bash: single quotes, or ANSI-C `$'…'` when the value holds control characters, so
/// that a quoted value never spans lines of a script.
fn quote(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn log_pattern(l: &Loaded, stage: &str, sharded: bool) -> PathBuf {
    let name = if sharded { format!("{stage}-%A_%a.log") } else { format!("{stage}-%j.log") };
    l.manifest.dir().join("slurm").join("logs").join(name)
}

fn log_file(l: &Loaded, stage: &str, job: &str, task: Option<usize>) -> PathBuf {
    let name = match task {
        Some(t) => format!("{stage}-{job}_{t}.log"),
        None => format!("{stage}-{job}.log"),
    };
    l.manifest.dir().join("slurm").join("logs").join(name)
}

fn script(l: &Loaded, stage: usize) -> Result<String> {
    let p = &l.pipeline;
    let s = &p.stages[stage];
    let sharded = s.command.is_sharded();
    let exe = std::env::current_exe().context("locating the starpipe executable")?;
    let file = l.file.as_ref().context("SLURM runs need a pipeline file")?;
    let mut cmd = vec![
        quote(&exe.display().to_string()),
        "run".into(),
        quote(&file.display().to_string()),
        "--workdir".into(),
        quote(&l.workdir.display().to_string()),
        "--shards".into(),
        l.shards.to_string(),
        "--stage".into(),
        quote(&s.name),
    ];
    if sharded {
        cmd.push("--shard".into());
        cmd.push(format!("\"${{SLURM_ARRAY_TASK_ID}}/{}\"", l.shards));
    }
    // Only validated names (`pipeline::spec`) stand unquoted here; every path is single-quoted
    // where the shell reads it and escaped in the comment, so no value of the pipeline file can
    // add a line. The log path goes to sbatch as an argument (`output_arg`), never through a shell.
    Ok(format!(
        "#!/bin/bash\n\
         #SBATCH --job-name=starpipe-{}-{}\n\
         # Written by starpipe {} for {}; `starpipe slurm submit` rewrites it.\n\
         set -euo pipefail\n\
         cd {}\n\
         exec {}\n",
        p.name,
        s.name,
        crate::VERSION,
        file.display().to_string().escape_default(),
        quote(&l.workdir.display().to_string()),
        cmd.join(" ")
    ))
}

/// sbatch's `--output` for a stage's log, passed as one argument.
fn output_arg(l: &Loaded, stage: usize) -> String {
    let s = &l.pipeline.stages[stage];
    format!("--output={}", log_pattern(l, &s.name, s.command.is_sharded()).display())
}

/// sbatch options from the pipeline's `[slurm] options`, the stage's `slurm` and the command line,
/// in that order of precedence: an option given again later replaces the earlier one in place
/// (`--time=02:00:00` for every job, `--time=12:00:00` for one stage), so no job gets it twice.
fn merge_sbatch_options(layers: &[&[String]]) -> Vec<String> {
    // (option name, its tokens); `--name=value` and `--name value` are one option each.
    let mut merged: Vec<(&str, Vec<String>)> = Vec::new();
    for layer in layers {
        let mut i = 0;
        while i < layer.len() {
            let tok = layer[i].as_str();
            let name = tok.split_once('=').map_or(tok, |(n, _)| n);
            let mut tokens = vec![tok.to_string()];
            if !tok.contains('=') && layer.get(i + 1).is_some_and(|v| !v.starts_with('-')) {
                tokens.push(layer[i + 1].clone());
                i += 1;
            }
            i += 1;
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = tokens,
                None => merged.push((name, tokens)),
            }
        }
    }
    merged.into_iter().flat_map(|(_, t)| t).collect()
}

/// An argument as the shell would need it typed: bare when it holds only safe characters.
fn shell_word(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | ':' | ',' | '%' | '+' | '@')
        });
    if safe { arg.to_string() } else { quote(arg) }
}

/// `[0,1,2,3,5,7,8]` → `0-3,5,7-8` (sbatch's array syntax).
fn array_ranges(ids: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut k = 0;
    while k < ids.len() {
        let start = ids[k];
        while k + 1 < ids.len() && ids[k + 1] == ids[k] + 1 {
            k += 1;
        }
        parts.push(if ids[k] == start { start.to_string() } else { format!("{start}-{}", ids[k]) });
        k += 1;
    }
    parts.join(",")
}

/// Whether sbatch's array syntax (`3`, `0-511`, `0,2-3`, `0-99%10`) covers `task`.
fn array_contains(spec: &str, task: usize) -> bool {
    let spec = spec.split('%').next().unwrap_or("");
    spec.split(',').any(|part| match part.split_once('-') {
        Some((a, b)) => a.parse::<usize>().is_ok_and(|a| a <= task) && b.parse::<usize>().is_ok_and(|b| task <= b),
        None => part.parse::<usize>().is_ok_and(|a| a == task),
    })
}

/// The cluster's MaxArraySize (array task ids must stay below it), if scontrol tells.
fn max_array_size() -> Option<usize> {
    let out = Command::new("scontrol").args(["show", "config"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("MaxArraySize")?.trim().strip_prefix('=')?.trim().parse().ok())
}

/// Job ids of this pipeline still in the queue, with their state per array task.
fn queued() -> Result<BTreeMap<String, (String, String)>> {
    let out = Command::new("squeue")
        .args(["--me", "-h", "-r", "-o", "%i|%T|%r"])
        .output()
        .context("running squeue (is SLURM installed and on PATH?)")?;
    if !out.status.success() {
        bail!("squeue failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, '|');
            Some((f.next()?.to_string(), (f.next()?.to_string(), f.next().unwrap_or("").to_string())))
        })
        .collect())
}

/// A job's records in `scontrol` (kept for MinJobAge after it ended): per array-task spec (None
/// for a plain job), its state and reason. One call per job, however many array tasks.
#[derive(Default)]
struct FinishedJobs(HashMap<String, Vec<(Option<String>, String, String)>>);

impl FinishedJobs {
    fn state(&mut self, job: &str, task: Option<usize>) -> Option<(String, String)> {
        let records = self.0.entry(job.to_string()).or_insert_with(|| {
            let Ok(out) = Command::new("scontrol").args(["show", "job", "-o", job]).output() else { return vec![] };
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|line| {
                    let kv: HashMap<&str, &str> = line.split_whitespace().filter_map(|t| t.split_once('=')).collect();
                    let spec = kv.get("ArrayTaskId").map(|s| s.to_string());
                    Some((spec, kv.get("JobState")?.to_string(), kv.get("Reason").unwrap_or(&"").to_string()))
                })
                .collect()
        });
        records
            .iter()
            .find(|(spec, _, _)| match (task, spec) {
                (Some(t), Some(s)) => array_contains(s, t),
                (None, _) => true,
                (Some(_), None) => false,
            })
            .map(|(_, state, reason)| (state.clone(), reason.clone()))
    }
}

fn queue_key(job: &str, task: Option<usize>) -> String {
    match task {
        Some(t) => format!("{job}_{t}"),
        None => job.to_string(),
    }
}

/// Writes the sbatch scripts and submits the tasks that are not current (`resubmit`: once none of
/// the pipeline's jobs is queued). Progress lines go to `out`, warnings and extra errors to `err`.
pub fn submit(l: &Loaded, a: &SubmitOptions, resubmit: bool, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let p = &l.pipeline;
    let mut record = Submissions::read(l);
    if resubmit && !a.dry_run {
        let q = queued()?;
        let ours: Vec<&str> = record
            .submissions
            .iter()
            .map(|s| s.job_id.as_str())
            .filter(|id| q.keys().any(|k| k == id || k.starts_with(&format!("{id}_"))))
            .collect();
        if !ours.is_empty() {
            bail!("jobs of this pipeline are still queued ({}): wait for them or scancel them first", ours.join(", "));
        }
    }
    let missing = super::plan::missing_inputs(p, &l.workdir);
    if a.dry_run {
        missing.iter().for_each(|e| say!(err, "warning: {e}"));
    } else if let Some(first) = missing.first() {
        missing[1..].iter().for_each(|e| say!(err, "error: {e}"));
        bail!("{first}");
    }
    let sharded = p.stages.iter().any(|s| s.command.is_sharded());
    if sharded
        && !a.dry_run
        && let Some(max) = max_array_size().filter(|&m| l.shards > m)
    {
        bail!(
            "--shards {} exceeds this cluster's MaxArraySize {max} (array task ids must stay below it): \
             use at most {max} shards; each task then takes a larger share of the files",
            l.shards
        );
    }
    if sharded && !a.dry_run {
        std::fs::create_dir_all(&l.workdir).with_context(|| format!("creating workdir {}", l.workdir.display()))?;
        l.manifest.pin_shard_count(l.shards)?;
    }
    let attempt = record.submissions.iter().map(|s| s.attempt).max().unwrap_or(0) + 1;
    let slurm_dir = l.manifest.dir().join("slurm");
    if !a.dry_run {
        std::fs::create_dir_all(slurm_dir.join("logs")).with_context(|| format!("creating {}", slurm_dir.display()))?;
    }
    let mut job_of: HashMap<usize, String> = HashMap::new();
    for &i in &l.plan.order {
        let stage = &p.stages[i];
        let pending: Vec<Task> = l.tasks(i).into_iter().filter(|t| !l.is_current(t)).collect();
        if pending.is_empty() {
            say!(out, "{:<24} done: not submitted", stage.name);
            continue;
        }
        let script_path = slurm_dir.join(format!("{}.sbatch", stage.name));
        let text = script(l, i)?;
        let mut args: Vec<String> = vec!["--parsable".into(), output_arg(l, i)];
        let tasks = stage
            .command
            .is_sharded()
            .then(|| pending.iter().filter_map(|t| t.shard.map(|s| s.index)).collect::<Vec<_>>());
        if let Some(t) = &tasks {
            let throttle = a.max_running.map(|k| format!("%{k}")).unwrap_or_default();
            args.push(format!("--array={}{throttle}", array_ranges(t)));
        }
        let mut deps: Vec<&String> = l.plan.upstream(i).iter().filter_map(|u| job_of.get(u)).collect();
        deps.sort();
        if !deps.is_empty() {
            args.push(format!(
                "--dependency=afterok:{}",
                deps.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(":")
            ));
            args.push("--kill-on-invalid-dep=yes".into());
        }
        args.extend(merge_sbatch_options(&[&p.slurm_options, &stage.slurm, &a.sbatch]));
        args.push(script_path.display().to_string());
        if a.dry_run {
            say!(out, "# {}\n{text}", script_path.display());
            say!(out, "sbatch {}\n", args.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "));
            job_of.insert(i, format!("<{}>", stage.name));
            continue;
        }
        crate::io::write_bytes_atomically(&script_path, text.as_bytes())?;
        let sbatch = Command::new("sbatch").args(&args).output().context("running sbatch (is SLURM on PATH?)")?;
        if !sbatch.status.success() {
            record.write(l)?;
            bail!("sbatch for stage {} failed: {}", stage.name, String::from_utf8_lossy(&sbatch.stderr).trim());
        }
        // --parsable prints "id" or "id;cluster".
        let id = String::from_utf8_lossy(&sbatch.stdout).trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() {
            bail!("sbatch for stage {} printed no job id", stage.name);
        }
        let what = match &tasks {
            Some(t) => format!("array of {} task(s) {:?}", t.len(), t),
            None => "job".into(),
        };
        say!(out, "{:<24} submitted: {what}, job {id}", stage.name);
        record.submissions.push(Submission {
            attempt,
            stage: stage.name.clone(),
            job_id: id.clone(),
            tasks,
            script: script_path,
            shards: l.shards,
        });
        job_of.insert(i, id);
    }
    if !a.dry_run {
        record.write(l)?;
        if job_of.is_empty() {
            say!(out, "every task is done; nothing submitted");
        } else {
            say!(out, "follow with: starpipe slurm status {}", a.target_args);
        }
    }
    Ok(())
}

/// Per stage and task: done, queued, failed (with the error), ended or not submitted.
pub fn status(l: &Loaded, all: bool, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let p = &l.pipeline;
    let record = Submissions::read(l);
    let q = queued().unwrap_or_else(|e| {
        say!(err, "warning: {e}; queue states unknown");
        BTreeMap::new()
    });
    let (mut done, mut total) = (0, 0);
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut finished = FinishedJobs::default();
    let mut lines: Vec<String> = Vec::new();
    say!(out, "{:<24} tasks", "stage");
    for &i in &l.plan.order {
        let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
        for t in l.tasks(i) {
            total += 1;
            let stage = &p.stages[i].name;
            let index = t.shard.map(|s| s.index);
            let sub = record.latest(stage, index);
            let job = sub.map(|s| s.job_id.clone()).unwrap_or_default();
            let state = if l.has_record_for_command(&t) {
                done += 1;
                "done".to_string()
            } else if let Some((state, reason)) = sub.and_then(|s| q.get(&queue_key(&s.job_id, index))) {
                if reason.is_empty() || reason == "None" { state.clone() } else { format!("{state} ({reason})") }
            } else if let Some(f) = l.manifest.failed(&t.stem(p)) {
                errors.push((t.label(p), f.error.clone()));
                "FAILED (error below)".to_string()
            } else if let Some(s) = sub {
                match finished.state(&s.job_id, index) {
                    Some((state, reason)) if reason.is_empty() || reason == "None" => state,
                    Some((state, reason)) => format!("{state} ({reason})"),
                    None => "not done: the job ended (see its log)".into(),
                }
            } else {
                "not submitted".into()
            };
            let word = state.split(" (").next().unwrap_or(&state).trim_end_matches(':').to_string();
            *by_state.entry(word).or_default() += 1;
            if all || state != "done" {
                let log = sub.map(|s| log_file(l, stage, &s.job_id, index)).filter(|f| f.exists());
                lines.push(format!(
                    "{:<30} {:<42} {:<10} {}",
                    t.label(p),
                    state,
                    if job.is_empty() { "-".into() } else { queue_key(&job, index) },
                    log.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
                ));
            }
        }
        let counts: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
        say!(out, "{:<24} {}", p.stages[i].name, counts.join(", "));
    }
    if !lines.is_empty() {
        say!(out, "\n{:<30} {:<42} {:<10} log", "task", "state", "job");
        lines.iter().for_each(|l| say!(out, "{l}"));
    }
    say!(out, "\n{done} of {total} task(s) done");
    for (task, error) in errors {
        say!(out, "\n{task} failed:\n  {}", error.replace('\n', "\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn array_ids_are_written_as_ranges() {
        assert_eq!(super::array_ranges(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(super::array_ranges(&[4]), "4");
        assert_eq!(super::array_ranges(&(0..512).collect::<Vec<_>>()), "0-511");
    }

    #[test]
    fn repeated_sbatch_options_are_merged_later_layers_winning() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let merged = super::merge_sbatch_options(&[
            &v(&["--time=02:00:00", "--account", "a1", "--exclusive"]),
            &v(&["--time=12:00:00", "--mem=64G"]),
            &v(&["--account=a2", "--partition", "debug"]),
        ]);
        assert_eq!(merged, ["--time=12:00:00", "--account=a2", "--exclusive", "--mem=64G", "--partition", "debug"]);
    }

    #[test]
    fn array_specs_are_read_back() {
        assert!(super::array_contains("0-1", 1) && super::array_contains("0,2-3", 3));
        assert!(super::array_contains("0-99%10", 42) && super::array_contains("7", 7));
        assert!(!super::array_contains("0,2-3", 1) && !super::array_contains("7", 8));
    }
}
