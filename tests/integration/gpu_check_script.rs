//! scripts/gpu/check.sh, the one script a lent GPU runs (15 minutes of device time, so it must work
//! the first time), run here in its CPU mode (`DEVICE=cpu`: every step, small sizes) so that a
//! renamed flag or a changed card field breaks CI instead of the GPU session.

use crate::common::python;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

#[test]
fn gpu_check_script_runs_every_step_on_the_cpu() {
    let python = python("numpy, pyarrow");
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu/check.sh");
    let run = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_starpipe"))
        .arg(out.path())
        .env("DEVICE", "cpu")
        .env("PYTHON", &python)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(out.path().join("check.log")).unwrap_or_default();
    assert!(
        run.status.success(),
        "check.sh failed ({}):\n{}\n{}\nlog:\n{log}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(log.contains("correctness passed"), "no correctness verdict:\n{log}");

    // compare.py's verdict per precision: f32 and bf16 against the CPU f32 reference.
    let correctness: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("correctness.json")).unwrap()).unwrap();
    for precision in ["f32", "bf16"] {
        let verdict = &correctness[format!("cpu-{precision}")];
        assert_eq!(verdict["pass"], true, "{precision} outside its tolerance: {correctness}");
    }

    // Every measurement the GPU run is meant to record appears, in both precisions.
    let speed = std::fs::read_to_string(out.path().join("speed.jsonl")).unwrap();
    let mut seen = BTreeSet::new();
    for line in speed.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let rate = row["spectra_per_s"].as_f64().unwrap_or(f64::NAN);
        assert!(rate > 0.0, "a measurement without a rate: {line}");
        let kind = if row.get("end_to_end").is_some_and(|v| v == true) {
            "end to end"
        } else if row.get("training").is_some_and(|v| v == true) {
            assert!(row["last_val_loss"].as_f64().is_some_and(f64::is_finite), "training without a loss: {line}");
            "training"
        } else {
            "network"
        };
        seen.insert((row["network"].as_str().unwrap().to_owned(), kind, row["precision"].as_str().unwrap().to_owned()));
    }
    for precision in ["f32", "bf16"] {
        for (network, kind) in [
            ("mlp", "network"),
            ("mlp", "end to end"),
            ("encoder-small", "network"),
            ("encoder-specclip", "network"),
            ("encoder-small", "end to end"),
            ("mlp-train", "training"),
            ("encoder-small-train", "training"),
        ] {
            assert!(
                seen.contains(&(network.to_owned(), kind, precision.to_owned())),
                "no {network} {kind} {precision} measurement in speed.jsonl:\n{speed}"
            );
        }
    }
}
