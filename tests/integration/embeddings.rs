//! The embedding arm as a user runs it: train-encoder on both mock surveys → embed → an MLP on
//! embeddings → finetune → evaluate beside the pixel model with hybrids → infer → a catalogue with
//! a pixel head and an embedding head.

use crate::common::*;
use crate::models::{fixture, ok, overlap_mocks, run};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub(crate) struct Emb {
    pub(crate) encoder: PathBuf,
    pub(crate) lamost: PathBuf,
    pub(crate) desi: PathBuf,
    pub(crate) model: PathBuf,
    lora: PathBuf,
}

pub(crate) fn emb() -> &'static Emb {
    static E: OnceLock<Emb> = OnceLock::new();
    E.get_or_init(|| {
        let f = fixture();
        let e = Emb {
            encoder: f.p("encoder"),
            lamost: f.p("emb-lamost"),
            desi: f.p("emb-desi"),
            model: f.p("model-emb"),
            lora: f.p("adapter-emb-lora"),
        };
        // A tiny encoder: 2 epochs of the small preset on 300 spectra, 2 masked runs of 5 tokens.
        ok(run(
            &[
                "train-encoder",
                "--max-spectra",
                "300",
                "--max-epochs",
                "2",
                "--mask-chunks",
                "2",
                "--mask-chunk-len",
                "5",
            ],
            &[("--spectra", &f.p("lamost")), ("--spectra", &f.p("desi")), ("--out", &e.encoder)],
        ));
        ok(run(&["embed"], &[("--spectra", &f.p("lamost")), ("--encoder", &e.encoder), ("--out", &e.lamost)]));
        ok(run(&["embed"], &[("--spectra", &f.p("desi")), ("--encoder", &e.encoder), ("--out", &e.desi)]));
        ok(run(
            &["train", "--max-epochs", "10", "--batch-size", "64"],
            &[("--spectra", &e.lamost), ("--labels", &f.p("lamost-files/labels.parquet")), ("--out", &e.model)],
        ));
        ok(run(
            &["finetune", "--strategy", "lora", "--n-train", "80", "--max-epochs", "5", "--label-key", "TARGETID"],
            &[
                ("--spectra", &e.desi),
                ("--labels", &f.p("desi-files/labels.parquet")),
                ("--model", &e.model),
                ("--out", &e.lora),
            ],
        ));
        e
    })
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn encoder_card_and_embedding_shards() {
    let f = fixture();
    let e = emb();
    let card = json(&e.encoder.join("encoder-card.json"));
    assert_eq!(card["tokens"]["patch"], 20);
    assert_eq!(card["architecture"]["n_tokens"], 147);
    assert_eq!(card["architecture"]["d_model"], 64);
    let (first, best) = (card["initial_val_loss"].as_f64().unwrap(), card["val_loss"][1].as_f64().unwrap());
    assert!(best < first, "pre-training did not lower the masked-token loss: {first} → {best}");
    // Embedding shards: same rows, same order as the spectra; width 64; encoder hash.
    let spectra = read_spectra(&f.p("desi"));
    let emb = read_parts(&e.desi, "embeddings-");
    assert_eq!(strings(&emb, "spectrum_id"), strings(&spectra, "spectrum_id"));
    assert!(matches!(emb.column("embedding").unwrap().dtype(), DataType::Array(_, 64)));
    let sha = card["weights_sha256"].as_str().unwrap();
    assert!(strings(&emb, "encoder_sha256").iter().all(|s| s == sha));
    let names: Vec<String> = emb.get_column_names().iter().map(|s| s.to_string()).collect();
    let schema = starpipe::schema::embeddings();
    assert_eq!(names, schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
    // Round trip: the stored embedding of a spectrum is what the encoder gives for it now.
    let dev = candle_core::Device::Cpu;
    let (enc, card) = starpipe::encoder::train::load_encoder(&e.encoder, &dev).unwrap();
    let shard = std::fs::read_dir(f.p("desi"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("spectra-"))
        .unwrap();
    let mut first = Vec::new();
    use starpipe::shards::read::{RawPixels, for_each_batch};
    for_each_batch::<starpipe::io::FileError>(&shard, &card.window, 3, RawPixels::Drop, |b| {
        if first.is_empty() {
            first = starpipe::encoder::embed::embed_features(&enc, &card.tokens, &b.features, &dev).unwrap();
        }
        Ok(())
    })
    .unwrap();
    let stored = emb.column("embedding").unwrap().array().unwrap().get_as_series(0).unwrap();
    let stored: Vec<f32> = stored.f32().unwrap().into_no_null_iter().collect();
    assert_eq!(stored.len(), 64);
    for (a, b) in stored.iter().zip(&first[..64]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // A second run keeps the finished shard.
    let again = ok(run(&["embed"], &[("--spectra", &f.p("desi")), ("--encoder", &e.encoder), ("--out", &e.desi)]));
    assert!(again.contains("(1 kept"), "{again}");
    // bf16 (for GPUs, run here on the CPU): embeddings within 2 % of f32, and recorded as such.
    let half = f.p("emb-desi-bf16");
    ok(run(
        &["embed", "--precision", "bf16", "--device", "cpu"],
        &[("--spectra", &f.p("desi")), ("--encoder", &e.encoder), ("--out", &half)],
    ));
    let b = read_parts(&half, "embeddings-");
    assert_eq!(strings(&b, "spectrum_id"), strings(&emb, "spectrum_id"));
    for row in [0, b.height() / 2, b.height() - 1] {
        let get = |df: &DataFrame| -> Vec<f32> {
            let s = df.column("embedding").unwrap().array().unwrap().get_as_series(row).unwrap();
            s.f32().unwrap().into_no_null_iter().collect()
        };
        let (x, y) = (get(&emb), get(&b));
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        let diff = x.iter().zip(&y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt();
        assert!(diff / norm < 0.02 && diff > 0.0, "row {row}: relative difference {}", diff / norm);
    }
    let shard = std::fs::read_dir(&half).unwrap().map(|d| d.unwrap().path()).next().unwrap();
    let kv = starpipe::io::read_key_value_metadata(&shard).unwrap();
    assert!(kv.contains(&("starpipe.embed.precision".into(), "bf16".into())), "{kv:?}");
}

#[test]
fn embedding_model_card_and_mismatched_encoder() {
    let f = fixture();
    let e = emb();
    let card = json(&e.model.join("model-card.json"));
    assert_eq!(card["input"]["kind"], "embeddings");
    assert_eq!(card["input"]["dim"], 64);
    assert_eq!(card["architecture"]["hidden"], serde_json::json!([256, 64]));
    assert_eq!(card["input"]["mean"].as_array().unwrap().len(), 64);
    // Pixel shards given to an embedding model are refused by name (no embeddings-* there).
    let out =
        run(&["infer"], &[("--spectra", &f.p("desi")), ("--model", &e.model), ("--out", &f.p("pred-should-fail"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("embeddings-"), "{}", String::from_utf8_lossy(&out.stderr));

    // Embeddings of another encoder (another seed, so other weights) are refused by that model.
    let dir = tempfile::tempdir().unwrap();
    let (other, other_emb) = (dir.path().join("encoder-2"), dir.path().join("emb-2"));
    ok(run(
        &[
            "train-encoder",
            "--max-spectra",
            "100",
            "--max-epochs",
            "1",
            "--mask-chunks",
            "2",
            "--mask-chunk-len",
            "5",
            "--seed",
            "2",
        ],
        &[("--spectra", &f.p("desi")), ("--out", &other)],
    ));
    ok(run(&["embed"], &[("--spectra", &f.p("desi")), ("--encoder", &other), ("--out", &other_emb)]));
    let pred = dir.path().join("pred");
    let out = run(&["infer"], &[("--spectra", &other_emb), ("--model", &e.model), ("--out", &pred)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("encoder"), "{err}");
    let encoder_sha = json(&other.join("encoder-card.json"))["weights_sha256"].as_str().unwrap().to_string();
    assert!(
        err.contains(&encoder_sha[..12]) || err.contains("other encoder") || err.contains("another encoder"),
        "{err}"
    );
    assert!(!pred.exists() || std::fs::read_dir(&pred).unwrap().next().is_none(), "nothing written");
}

#[test]
fn evaluate_compares_pixels_embeddings_and_hybrids() {
    let f = fixture();
    let e = emb();
    let out = f.p("eval-both");
    let o = run(
        &["evaluate", "--label-key", "TARGETID", "--bootstrap", "50"],
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("desi-files/labels.parquet")),
            ("--model", &f.p("model")),
            ("--adapter", &f.p("adapter-zeroshot")),
            ("--adapter", &f.p("adapter-lora")),
            ("--embedding-model", &e.model),
            ("--embeddings", &e.desi),
            ("--embedding-adapter", &e.lora),
            ("--out", &out),
        ],
    );
    // The model (and its zero-shot adapter) learned from LAMOST at R = 1800, these DESI shards are
    // native: one warning, naming the model; the LoRA adapter learned from them; embeddings record
    // no resolution.
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let stdout = ok(o);
    assert_eq!(stderr.matches("DESI's native resolution").count(), 1, "{stderr}");
    // It says which encoder made the embeddings, and that this tiny one (small width, no pairs,
    // 2 epochs) is not the one the measured embedding results are for.
    let encoder: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.encoder.join("encoder-card.json")).unwrap()).unwrap();
    let sha = encoder["weights_sha256"].as_str().unwrap();
    let md = std::fs::read_to_string(out.join("evaluation.md")).unwrap();
    for text in [&stdout, &md] {
        assert!(text.contains(&format!("encoder {}", &sha[..12])), "{text}");
        assert!(text.contains("trained on 300 spectra for 2 epochs"), "{text}");
        assert!(text.contains("masked tokens only") && text.contains("not the recommended encoder"), "{text}");
        assert!(text.contains("Which head a catalogue publishes"), "the real-star comparison is pointed at: {text}");
    }
    assert!(stderr.contains(&format!("{} learned from spectra at R = 1800", f.p("model").display())), "{stderr}");
    let df = ParquetReader::new(std::fs::File::open(out.join("evaluation.parquet")).unwrap()).finish().unwrap();
    let input = strings(&df, "input");
    let strategy = strings(&df, "strategy");
    let count = |i: &str, s: &str| (0..df.height()).filter(|&k| input[k] == i && strategy[k] == s).count();
    // pixels: zeroshot + lora; embeddings: zeroshot (bare) + lora; hybrids for both shared strategies.
    for (i, s) in [
        ("pixels", "zeroshot"),
        ("pixels", "lora (n=80)"),
        ("embeddings", "zeroshot"),
        ("embeddings", "lora (n=80)"),
        ("hybrid-ivar", "lora (n=80)"),
        ("hybrid-regime", "zeroshot"),
        ("hybrid-ivar-regime", "lora (n=80)"),
    ] {
        assert_eq!(count(i, s), 9, "{i} {s}");
    }
    // Every input scores the same test stars.
    let n: Vec<i64> = df.column("n").unwrap().i64().unwrap().into_no_null_iter().collect();
    let all: Vec<i64> = (0..df.height()).filter(|&k| strings(&df, "regime")[k] == "all").map(|k| n[k]).collect();
    assert!(all.windows(2).all(|w| w[0] == w[1]), "{all:?}");

    // The hybrid's arithmetic, star by star: the inverse-variance mean of the two heads.
    let per_star =
        ParquetReader::new(std::fs::File::open(out.join("evaluation-predictions.parquet")).unwrap()).finish().unwrap();
    let (input, strategy, id) =
        (strings(&per_star, "input"), strings(&per_star, "strategy"), strings(&per_star, "spectrum_id"));
    let num = |c: &str| -> Vec<f64> {
        per_star.column(c).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().into_no_null_iter().collect()
    };
    let (feh, feh_err, teff, teff_err) = (num("feh"), num("feh_err"), num("teff"), num("teff_err"));
    let row = |i: &str, s: &str, sid: &str| {
        (0..per_star.height()).find(|&k| input[k] == i && strategy[k] == s && id[k] == sid)
    };
    let mut checked = 0;
    for k in (0..per_star.height()).filter(|&k| input[k] == "hybrid-ivar" && strategy[k] == "lora (n=80)") {
        let (p, e) = (row("pixels", &strategy[k], &id[k]).unwrap(), row("embeddings", &strategy[k], &id[k]).unwrap());
        for (v, s) in [(&feh, &feh_err), (&teff, &teff_err)] {
            let (w1, w2) = (1.0 / (s[p] * s[p]), 1.0 / (s[e] * s[e]));
            let mean = (v[p] * w1 + v[e] * w2) / (w1 + w2);
            assert!((v[k] - mean).abs() <= 1e-4 * mean.abs().max(1.0), "{}: {} vs {mean}", id[k], v[k]);
            assert!((s[k] - (w1 + w2).powf(-0.5)).abs() <= 1e-4 * s[k], "{}", id[k]);
        }
        checked += 1;
    }
    assert!(checked > 10, "{checked} hybrid stars checked");

    // The regime-gated inverse-variance hybrid: pixels alone unless the pixel head puts [Fe/H]
    // above −1 by 2σ, the inverse-variance hybrid there.
    let (mut poor, mut rich) = (0, 0);
    for k in (0..per_star.height()).filter(|&k| input[k] == "hybrid-ivar-regime" && strategy[k] == "lora (n=80)") {
        let p = row("pixels", &strategy[k], &id[k]).unwrap();
        let twin = if feh[p] - 2.0 * feh_err[p] < -1.0 {
            poor += 1;
            p
        } else {
            rich += 1;
            row("hybrid-ivar", &strategy[k], &id[k]).unwrap()
        };
        for v in [&feh, &feh_err, &teff, &teff_err] {
            assert_eq!(v[k], v[twin], "{}", id[k]);
        }
    }
    assert!(poor > 0 && rich > 10, "{poor} stars on pixels alone, {rich} on both heads");
}

#[test]
fn a_catalogue_with_a_pixel_and_an_embedding_head() {
    let f = fixture();
    let e = emb();
    let dir = tempfile::tempdir().unwrap();
    let (pix, embp) = (dir.path().join("pix"), dir.path().join("emb"));
    ok(run(&["infer"], &[("--spectra", &f.p("desi")), ("--model", &f.p("model")), ("--out", &pix)]));
    ok(run(&["infer"], &[("--spectra", &e.desi), ("--model", &e.model), ("--adapter", &e.lora), ("--out", &embp)]));
    let cat = dir.path().join("c.parquet");
    ok(run(
        &["catalog"],
        &[("--spectra", &f.p("desi")), ("--predictions", &pix), ("--predictions", &embp), ("--out", &cat)],
    ));
    let df = ParquetReader::new(std::fs::File::open(&cat).unwrap()).finish().unwrap();
    let model = strings(&df, "model");
    let n = read_spectra(&f.p("desi")).height();
    assert_eq!(model.iter().filter(|m| *m == "mlp_embedding").count(), n);
    assert_eq!(model.iter().filter(|m| *m == "mlp_pixels").count(), n);
    let flags: Vec<u32> = df.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
    let feh: Vec<Option<f32>> = df.column("feh").unwrap().f32().unwrap().iter().collect();
    for k in 0..df.height() {
        // METAL_POOR_EMBED exactly on embedding rows with [Fe/H] < −1.
        let expect = model[k] == "mlp_embedding" && feh[k].is_some_and(|v| v < -1.0);
        assert_eq!(flags[k] & (1 << 1) != 0, expect, "row {k}");
    }
    // HEAD_DISAGREE comes in pairs and follows the arithmetic: both heads of a spectrum when they
    // differ by more than k combined σ in a parameter, neither otherwise. At k = 0.5 some do.
    let strict = dir.path().join("strict.parquet");
    let summary = ok(run(
        &["catalog", "--disagree-sigma", "0.5"],
        &[("--spectra", &f.p("desi")), ("--predictions", &pix), ("--predictions", &embp), ("--out", &strict)],
    ));
    let df = ParquetReader::new(std::fs::File::open(&strict).unwrap()).finish().unwrap();
    let ids = strings(&df, "spectrum_id");
    let flags: Vec<u32> = df.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
    let col = |c: &str| -> Vec<Option<f32>> { df.column(c).unwrap().f32().unwrap().iter().collect() };
    let (v, s) = ([col("teff"), col("logg"), col("feh")], [col("teff_err"), col("logg_err"), col("feh_err")]);
    let (mut flagged, mut checked) = (0, 0);
    for k in 0..df.height() {
        let Some(j) = (0..df.height()).find(|&j| j != k && ids[j] == ids[k]) else { continue };
        let is_flagged = flags[k] & (1 << 0) != 0;
        assert_eq!(is_flagged, flags[j] & (1 << 0) != 0, "pairs: {}", ids[k]);
        let z: Option<Vec<f64>> = (0..3)
            .map(|p| {
                let (a, b, sa, sb) = (v[p][k]?, v[p][j]?, s[p][k]?, s[p][j]?);
                Some(((a - b) as f64).abs() / ((sa as f64).powi(2) + (sb as f64).powi(2)).sqrt())
            })
            .collect();
        let Some(z) = z else { continue };
        let worst = z.iter().cloned().fold(0.0, f64::max);
        if (worst - 0.5).abs() > 1e-3 {
            assert_eq!(is_flagged, worst > 0.5, "{}: {z:?}", ids[k]);
            checked += 1;
        }
        flagged += usize::from(is_flagged);
    }
    assert!(flagged > 0 && checked > flagged, "flagged {flagged} of {checked} rows checked");
    // The summary counts the bit as written, marked after the join (it once missed it).
    let all_flagged = flags.iter().filter(|f| *f & 1 != 0).count();
    let line = summary.lines().find(|l| l.contains("HEAD_DISAGREE")).unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(line.split_whitespace().next(), Some(all_flagged.to_string().as_str()), "{summary}");
}

#[test]
fn a_killed_encoder_run_resumes_from_its_checkpoint_to_identical_weights() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("enc");
    let args = ["train-encoder", "--max-spectra", "200", "--max-epochs", "3", "--patience", "9", "--mask-chunks", "2"];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_starpipe"))
        .args(args)
        .arg("--spectra")
        .arg(f.p("lamost"))
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first epoch's checkpoint is down.
    let ckpt = out.join("checkpoint.json");
    let start = std::time::Instant::now();
    while !ckpt.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ckpt.exists(), "no checkpoint after the first epoch");
    assert!(!out.join("encoder-card.json").exists(), "the run should have been killed before finishing");
    let first: serde_json::Value = json(&ckpt);
    let done = first["epoch"].as_u64().unwrap();
    // The same command again continues from the checkpoint (resuming is the default).
    ok(run(&args, &[("--spectra", &f.p("lamost")), ("--out", &out)]));
    let card = json(&out.join("encoder-card.json"));
    assert_eq!(card["epochs_run"], 3);
    // The epochs before the kill are kept as they were, not redone.
    for e in 0..done as usize {
        assert_eq!(card["val_loss"][e], first["val_loss"][e]);
    }
    assert!(!ckpt.exists(), "checkpoints are removed once the encoder is written");
    // The optimiser's moments travel in the checkpoint: the resumed encoder is the uninterrupted
    // one, bit for bit.
    let whole = dir.path().join("whole");
    ok(run(&args, &[("--spectra", &f.p("lamost")), ("--out", &whole)]));
    for file in ["encoder.safetensors", "encoder-card.json"] {
        let (a, b) = (std::fs::read(out.join(file)).unwrap(), std::fs::read(whole.join(file)).unwrap());
        assert!(
            a == b,
            "{file} differs between the resumed and the uninterrupted run:\n{}\n{}",
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b)
        );
    }
}

/// The cross-survey contrastive objective end to end: a DESI mock that shares stars with a LAMOST
/// mock writes their crossmatch; train-encoder learns from the pairs alongside masked tokens (and
/// from the pairs alone), records the objective in its card, and a killed run resumes to the same
/// weights, the learned temperature included.
#[test]
fn contrastive_pretraining_on_crossmatched_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    overlap_mocks(dir.path(), 160, 120, 40, 0.7);
    // The crossmatch: every pair names a LAMOST obsid and a DESI TARGETID of the same mock Gaia star.
    let xm = read_parts(&p("desi-files"), "crossmatch");
    let names: Vec<String> = xm.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(names, ["obsid", "targetid", "gaia_source_id"]);
    let lamost = read_parts(&p("lamost-files"), "labels");
    let gaia_of: std::collections::HashMap<i64, i64> = lamost
        .column("obsid")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .zip(lamost.column("gaia_source_id").unwrap().i64().unwrap().into_no_null_iter())
        .collect();
    let obsid: Vec<i64> = xm.column("obsid").unwrap().i64().unwrap().into_no_null_iter().collect();
    let gaia: Vec<i64> = xm.column("gaia_source_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert!(obsid.len() >= 20, "{} pairs", obsid.len());
    assert!(obsid.iter().zip(&gaia).all(|(o, g)| gaia_of[o] == *g), "a pair's obsid is not its Gaia star");
    for (survey, files) in [("lamost", "lamost-files"), ("desi", "desi-files")] {
        ok(run(
            &["ingest", "--survey", survey, "--grid", "specclip", "--no-progress"],
            &[("--input", &p(files)), ("--out", &p(survey))],
        ));
    }
    // 64 spectra for the masked tokens, every pair for the contrastive term: each epoch is 4 steps.
    let args = [
        "train-encoder",
        "--max-epochs",
        "2",
        "--patience",
        "9",
        "--mask-chunks",
        "2",
        "--batch-size",
        "16",
        "--max-spectra",
        "64",
    ];
    let inputs = |out: &Path| -> Vec<(&'static str, PathBuf)> {
        vec![
            ("--spectra", p("lamost")),
            ("--spectra", p("desi")),
            ("--pairs", p("desi-files/crossmatch.parquet")),
            ("--out", out.to_path_buf()),
        ]
    };
    let train = |extra: &[&str], out: &Path| {
        let v = inputs(out);
        let v: Vec<(&str, &Path)> = v.iter().map(|(k, q)| (*k, q.as_path())).collect();
        ok(run(&[&args[..], extra].concat(), &v))
    };
    let log = train(&[], &p("both"));
    assert!(log.contains("contrastive:"), "{log}");
    let card = json(&p("both/encoder-card.json"));
    let o = &card["objective"];
    assert_eq!(o["masked_weight"], 1.0);
    assert_eq!(o["contrastive_weight"], 1.0);
    assert!(o["n_train_pairs"].as_u64().unwrap() >= 2 && o["n_val_pairs"].as_u64().unwrap() >= 2, "{o}");
    let t = o["temperature"].as_f64().unwrap();
    assert!(t > 0.01 && t < 1.0 && (t - 0.07).abs() > 1e-6, "temperature {t} was not learned");
    assert_eq!(o["val_retrieval_top1"].as_array().unwrap().len(), card["epochs_run"].as_u64().unwrap() as usize);
    // Contrastive only: the pairs alone drive training and lower their loss.
    train(&["--masked-weight", "0"], &p("pairs-only"));
    let c = json(&p("pairs-only/encoder-card.json"));
    let curve: Vec<f64> =
        c["objective"]["val_contrastive_loss"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(curve.iter().all(|v| v.is_finite()), "{curve:?}");
    assert!(
        c["val_loss"][c["best_epoch"].as_u64().unwrap() as usize - 1].as_f64().unwrap()
            < c["initial_val_loss"].as_f64().unwrap()
    );
    // Pair batches too small for the steps to cover the pairs: the run says an epoch sees only
    // some of them, and the card records the batch (cards without it read the batch size).
    let n_pairs = o["n_train_pairs"].as_u64().unwrap();
    assert!(n_pairs > 16, "{n_pairs} training pairs: too few for 4 steps of 4 pairs to miss some");
    let v = inputs(&p("narrow"));
    let v: Vec<(&str, &Path)> = v.iter().map(|(k, q)| (*k, q.as_path())).collect();
    let narrow = run(&[&args[..], &["--pair-batch-size", "4"]].concat(), &v);
    let stderr = String::from_utf8_lossy(&narrow.stderr).to_string();
    ok(narrow);
    assert!(stderr.contains(&format!("an epoch sees 16 of the {n_pairs} training pairs")), "{stderr}");
    assert_eq!(json(&p("narrow/encoder-card.json"))["pretraining"]["pair_batch_size"], 4);
    assert!(card["pretraining"].get("pair_batch_size").is_none(), "{}", card["pretraining"]);
    // Killed after its first epoch and run again, it ends where an uninterrupted run ends.
    let out = p("resumed");
    let v = inputs(&out);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_starpipe"));
    cmd.args(args);
    for (k, q) in &v {
        cmd.arg(k).arg(q);
    }
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let ckpt = out.join("checkpoint.json");
    let start = std::time::Instant::now();
    while !ckpt.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ckpt.exists(), "no checkpoint after the first epoch");
    train(&[], &out);
    for file in ["encoder.safetensors", "encoder-card.json"] {
        let (a, b) = (std::fs::read(out.join(file)).unwrap(), std::fs::read(p("both").join(file)).unwrap());
        assert!(a == b, "{file} differs between the resumed and the uninterrupted run");
    }
}
