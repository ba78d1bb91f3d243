//! Damaged or mismatched artefacts between stages (model and encoder directories, prediction and
//! embedding shards): each is refused with an error that names the file and the reason, and the
//! refusing command leaves nothing half-written behind.

use crate::common::*;
use crate::embeddings::emb;
use crate::models::{fixture, ok, run};
use crate::pipeline::copy_dir;
use std::path::Path;

/// Runs `args`, expects failure, and checks that stderr names `file` and says `reason`, and that
/// `out` holds no output or temporary file.
fn refused(args: &[&str], paths: &[(&str, &Path)], file: &str, reason: &str, out: &Path) {
    let o = run(args, paths);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(err.contains(file) && err.contains(reason), "expected '{file}' and '{reason}' in: {err}");
    let left: Vec<_> = std::fs::read_dir(out).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().ends_with(".parquet") && !n.to_string_lossy().contains(".tmp")),
        "half-written output left in {}: {left:?}",
        out.display()
    );
}

/// A copy of the directory `from` under `into`, with its `file` cut to half its length.
fn truncated_copy(from: &Path, into: &Path, file: &str) -> std::path::PathBuf {
    let copy = into.join(from.file_name().unwrap());
    copy_dir(from, &copy);
    let bytes = std::fs::read(copy.join(file)).unwrap();
    std::fs::write(copy.join(file), &bytes[..bytes.len() / 2]).unwrap();
    copy
}

#[test]
fn truncated_model_weights_are_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let model = truncated_copy(&f.p("model"), dir.path(), "model.safetensors");
    let out = dir.path().join("pred");
    refused(
        &["infer"],
        &[("--spectra", &f.p("desi")), ("--model", &model), ("--out", &out)],
        "model.safetensors",
        "does not match the card",
        &out,
    );
}

#[test]
fn a_card_that_does_not_describe_its_weights_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_dir(&f.p("model"), &model);
    let card_path = model.join("model-card.json");
    let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    card["architecture"]["hidden"] = serde_json::json!([48, 17]);
    std::fs::write(&card_path, serde_json::to_string_pretty(&card).unwrap()).unwrap();
    let out = dir.path().join("pred");
    refused(
        &["infer"],
        &[("--spectra", &f.p("desi")), ("--model", &model), ("--out", &out)],
        "model.safetensors",
        "expected [17, 48]",
        &out,
    );
    // A card that is not JSON names itself.
    std::fs::write(&card_path, "{ not json").unwrap();
    refused(
        &["infer"],
        &[("--spectra", &f.p("desi")), ("--model", &model), ("--out", &out)],
        "model-card.json",
        "key must be a string",
        &out,
    );
}

#[test]
fn spectra_on_a_grid_that_misses_the_model_window_are_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let red = dir.path().join("red");
    ok(run(
        &["ingest", "--survey", "lamost", "--wave-min", "6000", "--wave-max", "7000", "--no-progress"],
        &[("--input", &data("real/lamost")), ("--out", &red)],
    ));
    let out = dir.path().join("pred");
    refused(
        &["infer"],
        &[("--spectra", &red), ("--model", &f.p("model")), ("--out", &out)],
        "spectra-00000-of-00001-00000.parquet",
        "window",
        &out,
    );
}

#[test]
fn truncated_encoder_weights_are_refused() {
    let e = emb();
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let encoder = truncated_copy(&e.encoder, dir.path(), "encoder.safetensors");
    let out = dir.path().join("emb");
    refused(
        &["embed"],
        &[("--spectra", &f.p("desi")), ("--encoder", &encoder), ("--out", &out)],
        "encoder.safetensors",
        "does not match the card",
        &out,
    );
}

#[test]
fn predictions_made_from_other_spectra_are_refused_by_the_catalogue() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let lamost_pred = dir.path().join("lamost-pred");
    ok(run(&["infer"], &[("--spectra", &f.p("lamost")), ("--model", &f.p("model")), ("--out", &lamost_pred)]));
    let out = dir.path().join("cat");
    std::fs::create_dir_all(&out).unwrap();
    refused(
        &["catalog"],
        &[("--spectra", &f.p("desi")), ("--predictions", &lamost_pred), ("--out", &out.join("c.parquet"))],
        "lamost-pred/predictions-00000-of-00001-00000.parquet",
        "these predictions belong to other spectra",
        &out,
    );
}

#[test]
fn predictions_from_embeddings_of_other_spectra_are_refused_by_the_catalogue() {
    let f = fixture();
    let e = emb();
    let dir = tempfile::tempdir().unwrap();
    // Embeddings of the LAMOST spectra, predicted by the embedding model, offered as DESI's head.
    let pred = dir.path().join("emb-pred");
    ok(run(&["infer"], &[("--spectra", &e.lamost), ("--model", &e.model), ("--out", &pred)]));
    let out = dir.path().join("cat");
    std::fs::create_dir_all(&out).unwrap();
    refused(
        &["catalog"],
        &[("--spectra", &f.p("desi")), ("--predictions", &pred), ("--out", &out.join("c.parquet"))],
        "emb-pred/predictions-00000-of-00001-00000.parquet",
        "were made from other spectra",
        &out,
    );
}

#[test]
fn spectra_of_two_ingests_in_one_catalogue_are_refused_saying_how() {
    let f = fixture();
    let pred = f.p("any-predictions"); // refused before any prediction is read
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cat");
    std::fs::create_dir_all(&out).unwrap();
    let o = run(
        &["catalog"],
        &[
            ("--spectra", &f.p("desi")),
            ("--spectra", &f.p("lamost")),
            ("--predictions", &pred),
            ("--out", &out.join("c.parquet")),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("have the same name") && err.contains("into one --out"), "{err}");
}
