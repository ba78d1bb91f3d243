//! `starpipe slurm` against a real SLURM (a single-node cluster: scripts/slurm/start-local-cluster.sh,
//! which `.ci/run` starts). One ingest shard fails on purpose; the dependent jobs must be cancelled;
//! after the input is fixed, `resubmit` must re-run that shard only, and the final catalogue must
//! equal the one-machine run's byte for byte. Without a cluster that test is ignored (with its
//! reason); `hostile_values_never_reach_a_shell` needs none.

use crate::models::{ok, run};
use crate::pipeline::{copy_dir, mock_input, tiny_pipeline};
use starpipe::artifacts::ShardSpec;
use starpipe::ingest::Survey;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Fails, naming the way out, unless a SLURM controller answers with a usable node. The tests that
/// need one are `#[ignore]`d with that reason; `scripts/test-env.sh` starts a single-node cluster
/// where it can, and the README test command runs them with `--include-ignored`.
fn require_slurm() {
    let up = Command::new("sinfo").args(["-h", "-o", "%T"]).output().is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).lines().any(|l| ["idle", "mixed", "allocated"].contains(&l.trim()))
    });
    assert!(
        up,
        "no SLURM node is up: scripts/slurm/start-local-cluster.sh starts one (scripts/test-env.sh does, where it can)"
    );
}

/// Waits until none of the given jobs is in the queue.
fn wait_for(jobs: &[String]) {
    let start = Instant::now();
    loop {
        let out = Command::new("squeue").args(["--me", "-h", "-o", "%i"]).output().unwrap();
        let queue = String::from_utf8_lossy(&out.stdout).to_string();
        let ours = queue.lines().any(|l| jobs.iter().any(|j| l.trim() == j || l.trim().starts_with(&format!("{j}_"))));
        if !ours {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "jobs {jobs:?} still queued after 300 s:\n{queue}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn job_ids(work: &Path) -> Vec<(String, String, Option<Vec<usize>>, u64)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join(".starpipe/slurm/jobs.json")).unwrap()).unwrap();
    v["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tasks = s["tasks"].as_array().map(|t| t.iter().map(|x| x.as_u64().unwrap() as usize).collect());
            (
                s["stage"].as_str().unwrap().into(),
                s["job_id"].as_str().unwrap().into(),
                tasks,
                s["attempt"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn done_job(work: &Path, stem: &str) -> Option<String> {
    let text = std::fs::read_to_string(work.join(format!(".starpipe/done/{stem}.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["slurm_job"].as_str().map(str::to_string)
}

#[test]
#[ignore = "needs a SLURM cluster: the README test command (scripts/test-env.sh … --include-ignored) starts one where it can and runs this"]
fn slurm_arrays_cancel_on_failure_resubmit_only_the_failed_shard_and_match_the_local_run() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.toml");
    // 120 files in 4 shards of 30; one damaged file is 3.3 % of its shard, above 2 %.
    std::fs::write(&file, tiny_pipeline(0.02, 4)).unwrap();
    let shards = "4";

    // The one-machine run, on pristine files.
    let local = dir.path().join("local");
    copy_dir(mock_input(), &local.join("input"));
    ok(run(&["run", file.to_str().unwrap(), "--workdir", local.to_str().unwrap(), "--shards", shards], &[]));

    // The cluster run, with one file of shard 1 damaged.
    let cluster = dir.path().join("cluster");
    copy_dir(mock_input(), &cluster.join("input"));
    let inputs = starpipe::ingest::discover::discover(Survey::Lamost, &cluster.join("input")).unwrap();
    let victim = ShardSpec { index: 1, count: 4 }.select(&inputs)[2].path.clone();
    let pristine = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"SIMPLE  = this is not a FITS file").unwrap();

    let submit = |verb: &str| {
        ok(run(
            &["slurm", verb, file.to_str().unwrap(), "--workdir", cluster.to_str().unwrap(), "--shards", shards],
            &[],
        ))
    };
    let out = submit("submit");
    assert!(out.contains("ingest") && out.contains("array of 4 task(s)"), "{out}");
    let script = std::fs::read_to_string(cluster.join(".starpipe/slurm/ingest.sbatch")).unwrap();
    assert!(script.contains("--stage 'ingest' --shard \"${SLURM_ARRAY_TASK_ID}/4\""), "{script}");
    let first = job_ids(&cluster);
    assert_eq!(first.iter().map(|j| j.0.as_str()).collect::<Vec<_>>(), ["ingest", "train", "infer", "catalog"]);
    wait_for(&first.iter().map(|j| j.1.clone()).collect::<Vec<_>>());

    let status = ok(run(
        &[
            "slurm",
            "status",
            file.to_str().unwrap(),
            "--workdir",
            cluster.to_str().unwrap(),
            "--shards",
            shards,
            "--all",
        ],
        &[],
    ));
    let summary = status.lines().find(|l| l.starts_with("ingest ")).unwrap_or_default();
    assert!(summary.contains("3 done") && summary.contains("1 FAILED"), "one line per stage: {status}");
    let line = |label: &str| status.lines().find(|l| l.starts_with(label)).unwrap_or_default().to_string();
    for t in [0, 2, 3] {
        assert!(line(&format!("ingest [{t}/4]")).contains(" done"), "{status}");
    }
    let failed = line("ingest [1/4]");
    assert!(failed.contains("FAILED"), "{status}");
    let error = status.split("ingest [1/4] failed:").nth(1).unwrap_or_default();
    assert!(error.contains("max-failed-fraction"), "the task's error is shown: {status}");
    let merge = line("catalog");
    assert!(merge.contains("CANCELLED") || merge.contains("DependencyNeverSatisfied"), "{status}");
    assert!(!cluster.join("catalog/lamost.parquet").exists());
    assert!(status.contains("3 of 10 task(s) done"), "{status}");
    let before: Vec<_> = [0, 2, 3].iter().map(|t| done_job(&cluster, &format!("ingest.{:05}-of-00004", t))).collect();

    // Fix the file, resubmit: only ingest task 1 and the stages after it run.
    std::fs::write(&victim, pristine).unwrap();
    let out = submit("resubmit");
    assert!(out.contains("array of 1 task(s) [1]"), "{out}");
    let all = job_ids(&cluster);
    let second: Vec<_> = all.iter().filter(|j| j.3 == 2).collect();
    assert_eq!(second.iter().map(|j| j.0.as_str()).collect::<Vec<_>>(), ["ingest", "train", "infer", "catalog"]);
    assert_eq!(second[0].2.as_deref(), Some(&[1][..]), "only the failed shard is resubmitted");
    wait_for(&second.iter().map(|j| j.1.clone()).collect::<Vec<_>>());
    let after: Vec<_> = [0, 2, 3].iter().map(|t| done_job(&cluster, &format!("ingest.{:05}-of-00004", t))).collect();
    assert_eq!(before, after, "finished shards were not run again");
    assert_eq!(done_job(&cluster, "ingest.00001-of-00004"), Some(format!("{}_1", second[0].1)));

    let status = ok(run(
        &["slurm", "status", file.to_str().unwrap(), "--workdir", cluster.to_str().unwrap(), "--shards", shards],
        &[],
    ));
    assert!(status.contains("10 of 10 task(s) done"), "{status}");
    let a = std::fs::read(local.join("catalog/lamost.parquet")).unwrap();
    let b = std::fs::read(cluster.join("catalog/lamost.parquet")).unwrap();
    assert!(a == b, "the cluster's catalogue differs from the one-machine run's");
}

/// Values of a pipeline file that reach a batch script (names, paths, sbatch options) can never
/// add a line to it or run anything: names are refused unless safe, paths are quoted. The scripts
/// `slurm submit --dry-run` prints are run by bash with the executable swapped for `printf`, and
/// the arguments must come back exactly as given.
#[test]
fn hostile_values_never_reach_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "évil 'q\" $(touch PWNED1) `touch PWNED2`; touch PWNED3\ntouch PWNED4 #";
    let home = dir.path().join(hostile);
    std::fs::create_dir_all(&home).unwrap();
    let file = home.join("p.toml");
    let work = dir.path().join(format!("work {hostile}"));
    std::fs::create_dir_all(&work).unwrap();
    let option = format!("--comment={hostile}");
    let text =
        tiny_pipeline(0.5, 2).replacen("shards = 2", &format!("shards = 2\n\n[slurm]\noptions = [{option:?}]"), 1);
    std::fs::write(&file, &text).unwrap();

    // A hostile pipeline name is refused before anything is written.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("name = \"tiny\"", "name = \"evil\\ntouch /tmp/x\\n#\"")).unwrap();
    let out = run(&["slurm", "submit", bad.to_str().unwrap(), "--dry-run"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.toml:2") && err.contains("pipeline.name"), "{err}");

    let out = ok(run(&["slurm", "submit", file.to_str().unwrap(), "--dry-run"], &[("--workdir", &work)]));
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_starpipe")).unwrap();
    let quoted_exe = format!("'{}'", exe.display().to_string().replace('\'', r"'\''"));
    let scripts: Vec<&str> = out.split("#!/bin/bash\n").skip(1).collect();
    assert_eq!(scripts.len(), 4, "ingest, train, infer, catalog: {out}");
    for block in scripts {
        let script: String = block.lines().take_while(|l| !l.is_empty()).collect::<Vec<_>>().join("\n");
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 5, "no value adds a line: {script}");
        assert!(lines[0].starts_with("#SBATCH --job-name=starpipe-tiny-") && lines[1].starts_with("# Written by"));
        assert_eq!(lines[2], "set -euo pipefail");
        assert!(
            lines[3].starts_with("cd $'") && lines[4].starts_with(&format!("exec {quoted_exe} run $'")),
            "{script}"
        );
        let stage = lines[0].rsplit('-').next().unwrap();
        let probe = format!("#!/bin/bash\n{}\n", script.replacen(&quoted_exe, r"printf '%s\0'", 1));
        let argv = Command::new("bash")
            .arg("-c")
            .arg(&probe)
            .current_dir(dir.path())
            .env("SLURM_ARRAY_TASK_ID", "1")
            .output()
            .unwrap();
        assert!(argv.status.success(), "{}", String::from_utf8_lossy(&argv.stderr));
        let args: Vec<String> = argv
            .stdout
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        let mut expected = vec!["run".to_string(), file.display().to_string(), "--workdir".into()];
        expected.extend([work.display().to_string(), "--shards".into(), "2".into(), "--stage".into(), stage.into()]);
        if ["ingest", "infer"].contains(&stage) {
            expected.extend(["--shard".to_string(), "1/2".into()]);
        }
        assert_eq!(args, expected, "{script}");
    }
    // The printed sbatch lines are shell-ready too: the option comes back as one argument.
    for line in out.lines().filter(|l| l.starts_with("sbatch ")) {
        let probe = line.replacen("sbatch ", r"printf '%s\0' ", 1);
        let argv = Command::new("bash").arg("-c").arg(&probe).current_dir(dir.path()).output().unwrap();
        let args: Vec<&[u8]> = argv.stdout.split(|&b| b == 0).collect();
        assert!(args.contains(&option.as_bytes()), "{line}");
    }
    let pwned = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("PWNED"));
    assert!(!pwned, "a hostile value ran as a command");
    assert!(!work.join(".starpipe/slurm").exists(), "a dry run writes no scripts");
}
