//! `starpipe run` as users run it: a pipeline file, dependency order, skipping finished work,
//! errors before any work, and SIGKILL at random points followed by a re-run that ends
//! byte-identical to an uninterrupted run.

use crate::models::{ok, run};
use rand::{Rng, SeedableRng};
use starpipe::mock::lamost::{SnrDistribution, generate_lamost, write_label_catalog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// 120 labelled mock LAMOST files, made once.
pub(crate) fn mock_input() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep().join("lamost-files");
        let snr = SnrDistribution { min: 20.0, max: 150.0 };
        let stars = generate_lamost(&dir, starpipe::mock::Stars::builtin(), 120, 7, snr, 0.0, &|| {}).unwrap();
        write_label_catalog(&dir, &stars).unwrap();
        dir
    })
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let target = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` (relative path → bytes), the run bookkeeping in `.starpipe` excepted.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .filter(|(k, _)| !k.starts_with(".starpipe"))
        .collect()
}

/// ingest (sharded) → train → infer (sharded) → catalogue → report, on `input/`.
pub(crate) fn tiny_pipeline(max_failed: f64, max_epochs: u32) -> String {
    tiny_pipeline_on("input", max_failed, max_epochs)
}

/// The same, reading `input` (a directory with labels.parquet).
pub(crate) fn tiny_pipeline_on(input: &str, max_failed: f64, max_epochs: u32) -> String {
    format!(
        r#"[pipeline]
name = "tiny"
shards = 2

[stages.ingest]
command = "ingest"
survey = "lamost"
input = "{input}"
grid = "specclip"
shard_size = 25
threads = 1
max_failed_fraction = {max_failed}
out = "spectra"

[stages.train]
command = "train"
spectra = "spectra"
labels = "{input}/labels.parquet"
hidden = "48,16"
max_epochs = {max_epochs}
batch_size = 64
seed = 3
out = "model"

[stages.infer]
command = "infer"
spectra = "spectra"
model = "model"
out = "predictions"

[stages.catalog]
command = "catalog"
spectra = "spectra"
predictions = "predictions"
out = "catalog/lamost.parquet"
"#
    )
}

const REPORT_STAGE: &str = r#"
[stages.report]
command = "report"
catalog = "catalog/lamost.parquet"
spectra = "spectra"
out = "report"
"#;

fn workdir_with_input() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    copy_dir(mock_input(), &work.join("input"));
    (dir, work)
}

fn run_pipeline(file: &Path, work: &Path, extra: &[&str]) -> String {
    ok(run(&[&["run", file.to_str().unwrap(), "--workdir", work.to_str().unwrap()], extra].concat(), &[]))
}

#[test]
fn run_orders_stages_skips_finished_tasks_and_reruns_what_changed() {
    let (dir, work) = workdir_with_input();
    let file = dir.path().join("tiny.toml");
    std::fs::write(&file, tiny_pipeline(0.5, 6) + REPORT_STAGE).unwrap();
    // One stage alone (as a SLURM job runs it) needs what it reads to have finished.
    let alone = run(&["run", file.to_str().unwrap(), "--workdir", work.to_str().unwrap(), "--stage", "train"], &[]);
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(
        !alone.status.success() && err.contains("reads from stage ingest") && err.contains("not complete"),
        "{err}"
    );
    let first = run_pipeline(&file, &work, &[]);
    assert!(first.contains("7 task(s) run, 0 up to date"), "{first}");
    let order: Vec<&str> = first.lines().filter(|l| l.ends_with(" s") && l.contains("done in")).collect();
    assert_eq!(order.len(), 7, "{first}");
    for (k, stage) in
        ["ingest [0/2]", "ingest [1/2]", "train", "infer [0/2]", "infer [1/2]", "catalog", "report"].iter().enumerate()
    {
        assert!(order[k].contains(&format!("] {stage}: done")), "task {k}: {}", order[k]);
    }
    assert!(work.join("catalog/lamost.parquet").is_file());
    for png in ["kiel.png", "snr.png", "flags.png"] {
        let bytes = std::fs::read(work.join("report").join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000, "{png}: {} bytes", bytes.len());
    }
    let html = std::fs::read_to_string(work.join("report/index.html")).unwrap();
    assert!(
        html.contains("kiel.png") && html.contains("flags.png") && html.contains("every input accounted"),
        "{html}"
    );
    let done = std::fs::read_dir(work.join(".starpipe/done")).unwrap().count();
    assert_eq!(done, 7, "one done-record per task");

    let again = run_pipeline(&file, &work, &[]);
    assert!(again.contains("0 task(s) run, 7 up to date"), "{again}");
    // Another shard count in the same workdir would duplicate every spectrum: refused.
    let other = run(&["run", file.to_str().unwrap(), "--workdir", work.to_str().unwrap(), "--shards", "3"], &[]);
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success() && err.contains("was run with 2 shard(s)"), "{err}");

    // A deleted output shard makes its own task stale, not its siblings'; the re-run restores it.
    let records = |stem: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(work.join(format!(".starpipe/done/{stem}.json"))).unwrap())
            .unwrap()
    };
    let listed = records("infer.00001-of-00002")["outputs"].as_array().unwrap().clone();
    assert!(!listed.is_empty(), "a sharded task records its own files");
    let victim = work.join(listed[0]["path"].as_str().unwrap());
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let plan = run_pipeline(&file, &work, &["--dry-run", "--all"]);
    let state = |label: &str| plan.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_default().to_string();
    assert!(state("infer [0/2]").contains("up to date") && state("infer [1/2]").contains("to run"), "{plan}");
    assert!(state("ingest [1/2]").contains("up to date") && state("catalog").contains("to run"), "{plan}");
    // The dry run cannot know the shard will come back the same, so it lists what follows as well;
    // the run re-creates the shard under the same key, and the catalogue made from it stays.
    let repaired = run_pipeline(&file, &work, &[]);
    assert!(repaired.contains("1 task(s) run, 6 up to date"), "{repaired}");
    assert_eq!(std::fs::read(&victim).unwrap(), bytes, "the re-run writes the same shard again");

    // A training parameter changes: training and everything after it run again, ingest does not.
    std::fs::write(&file, tiny_pipeline(0.5, 5) + REPORT_STAGE).unwrap();
    let changed = run_pipeline(&file, &work, &[]);
    assert!(changed.contains("5 task(s) run, 2 up to date"), "{changed}");

    // One input file changes: only the ingest task that reads it is out of date.
    let inputs = starpipe::ingest::discover::discover(starpipe::ingest::Survey::Lamost, &work.join("input")).unwrap();
    let touched = &inputs[3]; // task 1 of 2 reads inputs 1, 3, 5, …
    let bytes = std::fs::read(&touched.path).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&touched.path, bytes).unwrap();
    let plan = run_pipeline(&file, &work, &["--dry-run", "--all"]);
    let state = |label: &str| plan.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_default().to_string();
    assert!(state("ingest [0/2]").contains("up to date"), "{plan}");
    assert!(state("ingest [1/2]").contains("to run"), "{plan}");
    assert!(state("train ").contains("to run"), "downstream of a changed task: {plan}");
    // Run it: that ingest task starts over and rewrites its shards; its sibling's stay untouched.
    let mtimes = |tag: &str| -> Vec<std::time::SystemTime> {
        let mut v: Vec<_> = std::fs::read_dir(work.join("spectra"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("spectra-{tag}")))
            .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .collect();
        v.sort();
        v
    };
    let (kept, redone) = (mtimes("00000-of-00002"), mtimes("00001-of-00002"));
    std::thread::sleep(Duration::from_millis(20));
    let ran = run_pipeline(&file, &work, &[]);
    assert!(ran.contains("ingest [0/2]: up to date") && ran.contains("ingest [1/2]: done"), "{ran}");
    assert_eq!(mtimes("00000-of-00002"), kept, "the other task's shards are kept");
    let after = mtimes("00001-of-00002");
    assert!(!after.is_empty() && after.iter().zip(&redone).all(|(a, b)| a > b), "the task's shards are rewritten");
}

#[test]
fn a_bad_pipeline_is_refused_before_any_work_with_key_and_line() {
    let (dir, work) = workdir_with_input();
    let file = dir.path().join("tiny.toml");
    // (replace, with, the line the error must point at, key, reason)
    let cases = [
        ("max_epochs = 6", "max_epoch = 6", "max_epoch = 6", "stages.train.max_epoch", "unexpected argument"),
        ("seed = 3", "seed = \"three\"", "seed = \"three\"", "stages.train.seed", "invalid value"),
        ("shard_size = 25", "shard_size = 0", "shard_size = 0", "stages.ingest.shard_size", "must be at least 1"),
        // Absurd values: each refused by the command's own parser, so by the pre-flight too.
        ("shards = 2", "shards = 1000000000", "shards = 1000000000", "pipeline.shards", "must be within 1..=100000"),
        ("threads = 1", "threads = -1", "threads = -1", "stages.ingest.threads", "invalid value '-1'"),
        ("threads = 1", "threads = 0", "threads = 0", "stages.ingest.threads", "must be at least 1"),
        (
            "max_failed_fraction = 0.5",
            "max_failed_fraction = 7",
            "max_failed_fraction = 7",
            "stages.ingest.max_failed_fraction",
            "must be within 0..1",
        ),
        ("batch_size = 64", "batch_size = 0", "batch_size = 0", "stages.train.batch_size", "must be at least 1"),
        ("max_epochs = 6", "max_epochs = 0", "max_epochs = 0", "stages.train.max_epochs", "must be at least 1"),
        ("seed = 3", "seed = 3\nlr = -0.1", "lr = -0.1", "stages.train.lr", "must be positive"),
        ("seed = 3", "seed = 3\nval_fraction = 1.0", "val_fraction = 1.0", "stages.train.val_fraction", "[0, 1)"),
        (
            "command = \"infer\"",
            "command = \"infre\"",
            "command = \"infre\"",
            "stages.infer.command",
            "unknown command",
        ),
        ("hidden", "labels = 3\nhidden", "labels = 3", "", "duplicate key"),
        (
            "labels = \"input/labels.parquet\"",
            "labels = \"input/labelz.parquet\"",
            "labels = \"input/labelz.parquet\"",
            "stages.train.labels",
            "does not exist, and no stage of the pipeline writes it",
        ),
    ];
    for (from, to, at, key, reason) in cases {
        let text = tiny_pipeline(0.5, 6).replacen(from, to, 1);
        let line = text.lines().position(|l| l == at).unwrap() + 1;
        std::fs::write(&file, &text).unwrap();
        let out = run(&["run", file.to_str().unwrap(), "--workdir", work.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(key) && err.contains(reason), "{key}: {err}");
        assert!(err.contains(&format!("tiny.toml:{line}:")), "{key} should point at line {line}: {err}");
        assert!(!work.join("spectra").exists() && !work.join(".starpipe").exists(), "no work before the check");
    }
}

/// Runs `args` to completion, then again killed (SIGKILL) at `kills` random points and re-run each
/// time; the directory `out` must end byte-identical to the uninterrupted run's.
/// What a killed run leaves must not claim more than it wrote: every ingest report part under its
/// final name has its spectra shard, holding exactly the spectra the part lists as written.
fn reports_match_their_shards(out: &Path) {
    use polars::prelude::{ParquetReader, SerReader};
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("report-").filter(|n| n.ends_with(".parquet")) else { continue };
        let report = ParquetReader::new(std::fs::File::open(e.path()).unwrap()).finish().unwrap();
        // A written spectrum is a row with its spectrum_id (file rows of DESI coadds have none).
        let written = report.column("spectrum_id").unwrap().str().unwrap().iter().flatten().count();
        let shard = out.join(format!("spectra-{rest}"));
        assert!(shard.exists(), "{name} is final but {} is not", shard.display());
        let rows = ParquetReader::new(std::fs::File::open(&shard).unwrap()).finish().unwrap().height();
        assert_eq!(written, rows, "{name} lists {written} spectra written, its shard holds {rows}");
    }
}

fn kill_and_rerun(args: &dyn Fn(&Path) -> Vec<String>, outputs: &dyn Fn(&Path) -> PathBuf, kills: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_starpipe");
    let reference_dir = dir.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let start = Instant::now();
    let status =
        Command::new(bin).args(args(&reference_dir)).env("RUST_LOG", "error").stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    let full = start.elapsed();
    let reference = tree(&outputs(&reference_dir));
    assert!(!reference.is_empty());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut killed_midway = 0;
    for k in 0..kills {
        let work = dir.path().join(format!("killed-{k}"));
        std::fs::create_dir_all(&work).unwrap();
        let delay = full.mul_f64(rng.random_range(0.05..0.95));
        let mut child =
            Command::new(bin).args(args(&work)).env("RUST_LOG", "error").stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix
            killed_midway += 1;
        }
        child.wait().unwrap();
        reports_match_their_shards(&outputs(&work));
        let status =
            Command::new(bin).args(args(&work)).env("RUST_LOG", "error").stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "re-run after a kill at {delay:?}");
        let after = tree(&outputs(&work));
        assert_eq!(after.keys().collect::<Vec<_>>(), reference.keys().collect::<Vec<_>>(), "kill at {delay:?}");
        for (name, bytes) in &reference {
            assert!(after[name] == *bytes, "{name} differs after a kill at {delay:?} and a re-run");
        }
    }
    assert!(killed_midway > 0, "no run was still going when killed: the test did not test anything");
}

#[test]
fn ingest_killed_at_random_points_reruns_to_byte_identical_shards() {
    let input = mock_input().to_path_buf();
    let args = move |work: &Path| -> Vec<String> {
        ["ingest", "--survey", "lamost", "--grid", "specclip", "--shard-size", "10", "--threads", "1", "--input"]
            .iter()
            .map(|s| s.to_string())
            .chain([input.display().to_string(), "--out".into(), work.join("spectra").display().to_string()])
            .collect()
    };
    kill_and_rerun(&args, &|w| w.join("spectra"), 4, 11);
}

#[test]
fn catalog_killed_at_random_points_reruns_to_byte_identical_files() {
    // Spectra and predictions made once; the catalogue (HATS, many partitions) is what is killed.
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    copy_dir(mock_input(), &work.join("input"));
    let file = dir.path().join("tiny.toml");
    std::fs::write(&file, tiny_pipeline(0.5, 3)).unwrap();
    run_pipeline(&file, &work, &["--stage", "ingest", "--stage", "train", "--stage", "infer"]);
    let (spectra, predictions) = (work.join("spectra"), work.join("predictions"));
    let args = move |out: &Path| -> Vec<String> {
        ["catalog", "--format", "hats", "--max-rows", "20", "--spectra"]
            .iter()
            .map(|s| s.to_string())
            .chain([spectra.display().to_string(), "--predictions".into(), predictions.display().to_string()])
            .chain(["--out".into(), out.join("hats").display().to_string()])
            .collect()
    };
    kill_and_rerun(&args, &|w| w.to_path_buf(), 4, 12);
}

#[test]
fn the_whole_run_killed_at_random_points_reruns_to_the_same_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.toml");
    // Every run reads the same input files (same modification times, so the same shard metadata).
    std::fs::write(&file, tiny_pipeline_on(&mock_input().display().to_string(), 0.5, 4)).unwrap();
    let f = file.clone();
    let args = move |work: &Path| -> Vec<String> {
        vec!["run".into(), f.display().to_string(), "--workdir".into(), work.display().to_string()]
    };
    kill_and_rerun(&args, &|w| w.to_path_buf(), 2, 13);
}

#[test]
fn every_shipped_pipeline_passes_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "demo, LAMOST pre-training and DESI catalogue pipelines: {files:?}");
    for f in files {
        let plan = ok(run(&["run", f.to_str().unwrap(), "--workdir", dir.path().to_str().unwrap(), "--dry-run"], &[]));
        assert!(plan.contains("to run"), "{}: {plan}", f.display());
        // One line per stage, whatever the shard count (the DESI catalogue has 512).
        let stages = starpipe::pipeline::spec::Pipeline::from_file(&f).unwrap().stages.len();
        let lines = plan.lines().filter(|l| !l.trim_start().starts_with("warning")).count();
        assert!(lines <= stages + 2, "{}: {plan}", f.display());
        if f.ends_with("desi-catalog.toml") {
            assert!(
                plan.lines().any(|l| l.trim_start().starts_with("ingest ") && l.contains("512 task(s) to run")),
                "{plan}"
            );
        }
    }
    // The demo is built in: `starpipe run` without a file.
    let plan = ok(run(&["run", "--workdir", dir.path().to_str().unwrap(), "--dry-run", "--all"], &[]));
    for stage in [
        "mock-lamost",
        "ingest-desi [1/2]",
        "pretrain",
        "lora",
        "encoder",
        "embed-desi",
        "evaluate",
        "catalog",
        "report",
    ] {
        assert!(plan.contains(&format!("  {stage} ")), "demo lacks {stage}: {plan}");
    }
    assert!(!dir.path().join(".starpipe").exists(), "a dry run writes nothing");
}

/// The commands a pipeline prints at the end work from wherever the user is, even with a relative
/// workdir: `{workdir}` becomes an absolute path.
#[test]
fn printed_try_commands_work_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[pipeline]
name = "try-me"
workdir = "w"
try = ["test -s '{workdir}/m/labels.parquet' && echo found-it"]

[stages.mock]
command = "mock"
survey = "lamost"
n = 5
out = "m"
"#;
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_starpipe")).args(["run", "p.toml"]).current_dir(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let tries: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("Try:")).skip(1).map(str::trim).collect();
    assert_eq!(tries.len(), 1, "{stdout}");
    let elsewhere = tempfile::tempdir().unwrap();
    let ran = Command::new("bash").arg("-c").arg(tries[0]).current_dir(elsewhere.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&ran.stdout).contains("found-it"), "{}: {ran:?}", tries[0]);
}

/// What the SLURM test checks that needs no cluster: a task over --max-failed-fraction fails with
/// a failed-record and stops what depends on it; fixed, a re-run runs only that task and what
/// follows; a truncated output re-runs the task that wrote it; the result equals a clean run's.
#[test]
fn a_failed_task_is_recorded_and_a_rerun_repairs_only_what_it_must() {
    let (dir, work) = workdir_with_input();
    let file = dir.path().join("tiny.toml");
    // 60 files per task: one damaged file is 1.7 %, above 1 %.
    std::fs::write(&file, tiny_pipeline(0.01, 4)).unwrap();
    let inputs = starpipe::ingest::discover::discover(starpipe::ingest::Survey::Lamost, &work.join("input")).unwrap();
    let victim = starpipe::artifacts::ShardSpec { index: 1, count: 2 }.select(&inputs)[2].path.clone();
    let pristine = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"SIMPLE  = this is not a FITS file").unwrap();

    let out = run(&["run", file.to_str().unwrap(), "--workdir", work.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("max-failed-fraction"), "{err}");
    let failed: Vec<String> = std::fs::read_dir(work.join(".starpipe/failed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("ingest.00001-of-00002"), "{failed:?}");
    assert!(!work.join("catalog/lamost.parquet").exists(), "nothing downstream of a failed task ran");

    std::fs::write(&victim, &pristine).unwrap();
    let repaired = run_pipeline(&file, &work, &[]);
    assert!(repaired.contains("ingest [0/2]: up to date"), "{repaired}");
    assert!(repaired.contains("4 task(s) run") || repaired.contains("5 task(s) run"), "{repaired}");
    assert_eq!(std::fs::read_dir(work.join(".starpipe/failed")).unwrap().count(), 0, "the failed-record goes");

    // A truncated output (its size changed) re-runs exactly the task that wrote it.
    let shard = std::fs::read_dir(work.join("predictions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("00001-of-00002"))
        .unwrap();
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let again = run_pipeline(&file, &work, &[]);
    let infer_done = again.lines().filter(|l| l.contains("] infer [") && l.contains(": done")).count();
    assert!(infer_done == 1 && again.contains("1 task(s) run"), "only the task that wrote it: {again}");
    assert_eq!(std::fs::read(&shard).unwrap(), bytes, "the task wrote the same shard again");

    // The same bytes as a run that never failed.
    let clean = dir.path().join("clean");
    copy_dir(mock_input(), &clean.join("input"));
    run_pipeline(&file, &clean, &[]);
    assert_eq!(tree(&work.join("catalog")), tree(&clean.join("catalog")));
}

/// Every command of the stage table is a command of the binary.
#[test]
fn every_stage_of_the_table_is_a_starpipe_command() {
    for k in starpipe::pipeline::spec::STAGES {
        let help = ok(run(&[k.name, "--help"], &[]));
        assert!(help.contains("--out"), "{}: {help}", k.name);
    }
}
