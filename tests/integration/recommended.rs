//! The README's recommended pipeline (`pipelines/recommended.toml`) as a user runs it from a fresh
//! clone, at small size: every value that names a file is inside the workdir or built in, and what
//! it publishes is calibrated, in both formats, with the repeats check done.

use crate::models::{ok, run};
use polars::prelude::*;
use std::path::Path;

/// The shipped file with its sizes cut down (stars, renders, epochs); nothing else changed.
fn small_recommended() -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/recommended.toml")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let small = match line {
            "n = 20000" => "n = 400",
            "n = 3000" => "n = 150",
            "repeats = 10" => "repeats = 1",
            "max_epochs = 40" => "max_epochs = 3",
            _ => line,
        };
        out.push_str(small);
        out.push('\n');
    }
    for cut in ["n = 400", "n = 150", "repeats = 1", "max_epochs = 3"] {
        assert!(out.contains(cut), "recommended.toml changed: update this test's size cuts ({cut})");
    }
    out
}

#[test]
fn the_recommended_pipeline_runs_from_the_repository_alone_and_publishes_calibrated_heads() {
    let spec = starpipe::pipeline::spec::Pipeline::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/recommended.toml"),
    )
    .unwrap();
    // Nothing it reads lies outside the workdir: every path-like value is relative, without `..`,
    // or a built-in.
    for stage in &spec.stages {
        for p in &stage.params {
            for v in p.strings() {
                let path = Path::new(v);
                assert!(
                    v.starts_with("builtin:") || (path.is_relative() && !v.contains("..") && !v.contains('{')),
                    "stage {} reads {v}",
                    stage.name
                );
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recommended.toml");
    std::fs::write(&file, small_recommended()).unwrap();
    let work = dir.path().join("work");
    let printed = ok(run(&["run", file.to_str().unwrap(), "--workdir", work.to_str().unwrap()], &[]));
    assert!(printed.contains("pipeline recommended:"), "{printed}");

    // Both formats' error models were fitted on real stars, with coverage per S/N bin recorded.
    for model in ["models/lamost-calibrated", "models/desi-calibrated"] {
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(work.join(model).join("model-card.json")).unwrap()).unwrap();
        let em = &card["error_model"];
        assert!(em["scale"][0].as_f64().unwrap() > 0.0, "{model}: {em}");
        assert!(em["coverage_by_snr"].as_array().is_some_and(|b| !b.is_empty()), "{model}: {em}");
    }
    // Every row of both catalogues comes from a calibrated head: no UNCALIBRATED bit anywhere.
    for cat in ["catalog/lamost.parquet", "catalog/desi.parquet"] {
        let df = ParquetReader::new(std::fs::File::open(work.join(cat)).unwrap()).finish().unwrap();
        assert!(df.height() > 50, "{cat}: {} rows", df.height());
        let flags = df.column("quality_flags").unwrap().u32().unwrap();
        assert_eq!(flags.iter().flatten().filter(|f| f & (1 << 5) != 0).count(), 0, "{cat}: UNCALIBRATED rows");
        let kv = starpipe::io::read_key_value_metadata(&work.join(cat)).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(starpipe::artifacts::metadata::get(&kv, "starpipe").unwrap()).unwrap();
        assert!(meta["heads"].as_array().unwrap().iter().all(|h| h["calibrated"] == true), "{cat}: {}", meta["heads"]);
    }
    // The repeats check paired stars across the two surveys through their Gaia ids.
    let repeats = std::fs::read_to_string(work.join("checks/repeats/repeats.md")).unwrap();
    assert!(repeats.to_lowercase().contains("lamost") && repeats.to_lowercase().contains("desi"), "{repeats}");
    let df =
        ParquetReader::new(std::fs::File::open(work.join("checks/repeats/repeats.parquet")).unwrap()).finish().unwrap();
    assert!(df.height() > 0, "{repeats}");
}
