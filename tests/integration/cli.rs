//! The binary as a user runs it: help, JSON logs, exit status, printed summary.

use crate::common::*;
use std::process::Command;

fn starpipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_starpipe"))
}

#[test]
fn help_documents_every_ingest_option() {
    let out = starpipe().args(["ingest", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--survey",
        "--input",
        "--out",
        "--shard",
        "--threads",
        "--shard-size",
        "--grid",
        "--degrade-to-r",
        "--log-format",
    ] {
        assert!(help.contains(flag), "ingest --help lacks {flag}");
    }
    let top = String::from_utf8(starpipe().arg("--help").output().unwrap().stdout).unwrap();
    assert!(top.contains("ingest"));
}

#[test]
fn json_logs_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = starpipe()
        .args(["--log-format", "json", "ingest", "--survey", "lamost", "--input"])
        .arg(data("real/lamost"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.lines().count() >= 2);
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some());
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("9 written, 1 skipped, 0 failed"), "{stdout}");
}

#[test]
fn bad_command_line_exits_nonzero_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = starpipe()
        .args(["ingest", "--survey", "lamost", "--input", "/no/such/dir", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
    let bad_shard = starpipe()
        .args(["ingest", "--survey", "lamost", "--input", ".", "--out", "x", "--shard", "4/4"])
        .output()
        .unwrap();
    assert!(!bad_shard.status.success());
    assert!(String::from_utf8_lossy(&bad_shard.stderr).contains("0 <= i < N"));
}

#[test]
fn mock_prints_the_emulator_report_and_an_emulated_star() {
    let out = starpipe().args(["mock", "--emulator-report"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("held-out") && text.contains("warm") && text.contains("4500-5500"), "{text}");

    let out = starpipe().args(["mock", "--emulate", "5777,4.44,0"]).output().unwrap();
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<(f64, f64, u8)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap())
        })
        .collect();
    assert!(rows.first().unwrap().0 < 3545.0 && rows.last().unwrap().0 > 9824.0);
    assert!(rows.iter().any(|r| r.2 == 1) && rows.iter().any(|r| r.2 == 0));
    let bad = starpipe().args(["mock", "--emulate", "100000,4,0"]).output().unwrap();
    assert!(!bad.status.success());
}

/// A command refused for its input leaves nothing where its output would have gone: the
/// writability check probes the nearest existing directory and creates none.
#[test]
fn a_wrong_input_leaves_no_empty_out_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/spectra");
    let run = starpipe()
        .args(["ingest", "--survey", "lamost", "--input", "/nonexistent-input", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("/nonexistent-input"), "{err}");
    assert!(!dir.path().join("new").exists(), "an empty --out was left behind");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no probe file left either");
}

/// An output that cannot be written is found before any work, named as the user wrote it, said
/// once; with JSON logs the fatal error is a JSON line too.
#[test]
fn an_unwritable_out_fails_at_once_naming_the_users_path() {
    let unwritable = "/proc/starpipe-cannot-write-here";
    for args in [
        vec!["train", "--spectra", "/nonexistent-spectra", "--labels", "/nonexistent.csv"],
        vec!["catalog", "--spectra", "/nonexistent-spectra", "--predictions", "/nonexistent-pred"],
        vec!["ingest", "--survey", "lamost", "--input", "/nonexistent-input"],
    ] {
        let out_path = if args[0] == "catalog" { format!("{unwritable}/cat.parquet") } else { unwritable.into() };
        let out = starpipe().args(&args).args(["--out", &out_path]).env("RUST_BACKTRACE", "0").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("cannot write --out {out_path}")), "checked before the inputs: {err}");
        assert!(!err.contains("Caused by") && !err.contains(".tmp"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let out = starpipe()
        .args(["--log-format", "json", "infer", "--spectra", "/x", "--model", "/y", "--out", unwritable])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(err.trim().lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "ERROR", "{err}");
    assert!(line["fields"]["error"].as_str().unwrap().contains("cannot write --out"), "{err}");
}

/// In a SLURM log (stderr not a terminal) a training run says how it is going, as fields, not as
/// a Rust Debug struct.
#[test]
fn training_without_a_terminal_logs_epoch_lines() {
    let f = crate::models::fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = starpipe()
        .args(["train", "--hidden", "16", "--max-epochs", "3", "--seed", "3"])
        .arg("--spectra")
        .arg(f.p("lamost"))
        .arg("--labels")
        .arg(f.p("lamost-files/labels.parquet"))
        .arg("--out")
        .arg(dir.path().join("m"))
        .env("STARPIPE_PROGRESS_SECONDS", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("epoch done").count(), 3, "{err}");
    assert!(err.contains("max_epochs=3") && err.contains("val_loss="), "{err}");
    assert!(!err.contains(" {") && !err.contains("Counts"), "no Debug structs: {err}");
}

/// Count flags of `mock` refuse 0 while parsing (a coadd of no rows cannot be written), so
/// `starpipe run`'s pre-flight catches them in a pipeline file.
#[test]
fn mock_counts_refuse_zero_at_parse_time() {
    let dir = tempfile::tempdir().unwrap();
    for args in [["--rows-per-coadd", "0"], ["--n", "0"]] {
        let out = starpipe()
            .args(["mock", "--survey", "desi", "--out", dir.path().to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(args[0]), "{err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}
