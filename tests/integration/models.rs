//! The model stages as a user runs them: mock surveys → ingest → train → finetune (all four
//! strategies) → evaluate → infer, through the binary.

use crate::common::*;
use polars::prelude::*;
use starpipe::grid::{GridPreset, LogGrid};
use starpipe::ingest::{IngestOptions, Survey, run_ingest};
use starpipe::labels::{LabelSpec, read_labels};
use starpipe::mock::desi::{generate_desi, write_desi_labels};
use starpipe::mock::lamost::{SnrDistribution, generate_lamost, write_label_catalog};
use starpipe::preprocess::PreprocessConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const SNR: SnrDistribution = SnrDistribution { min: 20.0, max: 150.0 };

pub(crate) struct Fixture {
    root: PathBuf,
}

impl Fixture {
    pub(crate) fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

pub(crate) fn run(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_starpipe"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.env("RUST_BACKTRACE", "0").output().unwrap()
}

pub(crate) fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A LAMOST mock (`dir/lamost-files`, seed 4) and a DESI mock (`dir/desi-files`, seed 5) that
/// observes stars of it in `fraction` of its star rows (`mock --overlap`); LAMOST at S/N 30–80.
pub(crate) fn overlap_mocks(dir: &Path, n_lamost: usize, n_desi: usize, rows_per_coadd: usize, fraction: f64) {
    let (n_lamost, n_desi) = (n_lamost.to_string(), n_desi.to_string());
    let (rows, fraction) = (rows_per_coadd.to_string(), fraction.to_string());
    ok(run(
        &["mock", "--survey", "lamost", "--n", &n_lamost, "--seed", "4", "--snr-dist", "loguniform:30:80"],
        &[("--out", &dir.join("lamost-files"))],
    ));
    ok(run(
        &[
            "mock",
            "--survey",
            "desi",
            "--n",
            &n_desi,
            "--rows-per-coadd",
            &rows,
            "--seed",
            "5",
            "--overlap-fraction",
            &fraction,
        ],
        &[("--out", &dir.join("desi-files")), ("--overlap", &dir.join("lamost-files"))],
    ));
}

fn ingest_specclip(survey: Survey, input: &Path, out: &Path) {
    let opts = IngestOptions::new(survey, input, out, PreprocessConfig::new(LogGrid::preset(GridPreset::Specclip)))
        .with_progress(false)
        .with_threads(Some(2));
    run_ingest(&opts).unwrap();
}

const TRAIN: &[&str] = &["train", "--hidden", "48,16", "--max-epochs", "12", "--batch-size", "64", "--seed", "3"];

/// One small labelled LAMOST + DESI mock, ingested, with a model and the four adapters; built once
/// and shared by the tests of this module.
pub(crate) fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let f = Fixture { root };
        let stars =
            generate_lamost(&f.p("lamost-files"), starpipe::mock::Stars::builtin(), 400, 1, SNR, 0.0, &|| {}).unwrap();
        write_label_catalog(&f.p("lamost-files"), &stars).unwrap();
        let rows = generate_desi(
            &f.p("desi-files"),
            starpipe::mock::Stars::builtin(),
            240,
            60,
            2,
            SNR,
            0.0,
            &Default::default(),
            &|| {},
        )
        .unwrap();
        write_desi_labels(&f.p("desi-files"), &rows).unwrap();
        ingest_specclip(Survey::Lamost, &f.p("lamost-files"), &f.p("lamost"));
        ingest_specclip(Survey::Desi, &f.p("desi-files"), &f.p("desi"));
        ok(run(
            TRAIN,
            &[
                ("--spectra", &f.p("lamost")),
                ("--labels", &f.p("lamost-files/labels.parquet")),
                ("--out", &f.p("model")),
            ],
        ));
        for s in ["zeroshot", "full", "lora", "reshead"] {
            ok(run(
                &finetune_args(s),
                &[
                    ("--spectra", &f.p("desi")),
                    ("--labels", &f.p("desi-files/labels.parquet")),
                    ("--model", &f.p("model")),
                    ("--out", &f.p(&format!("adapter-{s}"))),
                ],
            ));
        }
        f
    })
}

/// Fine-tuning arguments of an adapter of the fixture's model on its DESI spectra.
fn finetune_args(strategy: &str) -> [&str; 9] {
    ["finetune", "--strategy", strategy, "--n-train", "80", "--max-epochs", "10", "--label-key", "TARGETID"]
}

/// Adapters that had to move: trained on DESI labels the pre-trained model gets wrong on purpose
/// (Teff +400 K, log g +0.3, [Fe/H] −0.2), so their weights are not their zero-shot start (the
/// fixture's own LoRA keeps its start: zero-shot is already as good on 16 validation stars).
/// `moved-lora`, `moved-full` in the fixture; made once.
pub(crate) fn moved_adapters() -> &'static Fixture {
    static M: OnceLock<()> = OnceLock::new();
    let f = fixture();
    M.get_or_init(|| {
        let mut df =
            ParquetReader::new(std::fs::File::open(f.p("desi-files/labels.parquet")).unwrap()).finish().unwrap();
        for (name, by) in [("TEFF", 400.0), ("LOGG", 0.3), ("FEH", -0.2)] {
            let s = df.column(name).unwrap().cast(&DataType::Float64).unwrap();
            let v: Vec<Option<f64>> = s.f64().unwrap().iter().map(|x| x.map(|x| x + by)).collect();
            df.with_column(Series::new(name.into(), v).into()).unwrap();
        }
        ParquetWriter::new(std::fs::File::create(f.p("shifted-labels.parquet")).unwrap()).finish(&mut df).unwrap();
        for s in ["lora", "full"] {
            train_moved(s, &f.p(&format!("moved-{s}")));
        }
    });
    f
}

/// Trains a moved adapter into `out` and checks that it moved.
fn train_moved(strategy: &str, out: &Path) {
    let f = fixture();
    ok(run(
        &finetune_args(strategy),
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("shifted-labels.parquet")),
            ("--model", &f.p("model")),
            ("--out", out),
        ],
    ));
    let best = card(&out.join("adapter-card.json"))["training"]["report"]["best_epoch"].as_u64().unwrap();
    assert!(best > 0, "{strategy}: the adapter kept its start (best epoch 0)");
}

fn card(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn training_writes_a_card_that_describes_the_model() {
    let f = fixture();
    let c = card(&f.p("model/model-card.json"));
    assert_eq!(c["format"], "starpipe-model/1");
    assert_eq!(c["input"]["window"]["start"], 338);
    assert_eq!(c["input"]["window"]["npix"], 1462);
    let sha = starpipe::nn::weights::sha256_file(&f.p("model/model.safetensors")).unwrap();
    assert_eq!(c["weights_sha256"], sha.as_str());
    // Weights are as readable as every other output (they were written owner-only once).
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(f.p(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("model/model.safetensors"), mode("model/model-card.json"));
    assert_eq!(mode("adapter-lora/adapter.safetensors"), mode("model/model-card.json"));
    let t = &c["training"];
    assert_eq!(t["n_train"].as_u64().unwrap() + t["n_val"].as_u64().unwrap(), 400);
    assert_eq!(t["data_sha256"].as_str().unwrap().len(), 64);
    // Labels are standardised with the training set's statistics, and the range is recorded.
    let (lo, hi) = (c["label_range"]["min"][0].as_f64().unwrap(), c["label_range"]["max"][0].as_f64().unwrap());
    let mean = c["label_scaling"]["mean"][0].as_f64().unwrap();
    assert!(lo < mean && mean < hi && lo > 3000.0 && hi < 9000.0, "{lo} {mean} {hi}");
    // Out-of-distribution statistics of the 48→16 network's last hidden layer.
    assert_eq!(c["ood"]["dim"], 16);
    assert_eq!(c["ood"]["precision"].as_array().unwrap().len(), 256);
    let (median, p995) = (c["ood"]["median_train"].as_f64().unwrap(), c["ood"]["threshold_995"].as_f64().unwrap());
    assert!(0.0 < median && median < p995, "{median} {p995}");
    for p in 0..3 {
        let q = |k: &str| c["label_range"][k][p].as_f64().unwrap();
        assert!(q("min") <= q("p005") && q("p005") < q("p995") && q("p995") <= q("max"));
    }
    // Training learnt something: Teff on held-out LAMOST stars beats the label scatter by far.
    let teff = c["validation"].as_array().unwrap().iter().find(|m| m["parameter"] == "teff").unwrap();
    let std = c["label_scaling"]["std"][0].as_f64().unwrap();
    assert!(teff["robust_sigma"].as_f64().unwrap() < 0.5 * std, "{teff} vs label std {std}");
}

#[test]
fn infer_warns_when_shards_are_not_at_the_resolution_the_model_learned_from() {
    let f = fixture();
    // The model learned from LAMOST (R = 1800); the LoRA adapter from DESI as observed.
    let c = card(&f.p("model/model-card.json"));
    assert_eq!(c["training"]["resolutions"], serde_json::json!([{ "constant": 1800.0 }]));
    let a = card(&f.p("adapter-lora/adapter-card.json"));
    assert_eq!(a["training"]["resolutions"], serde_json::json!(["desi_native"]));
    let dir = tempfile::tempdir().unwrap();
    let infer = |spectra: &str, adapter: Option<&str>, out: &str| -> String {
        let (spectra, model, out) = (f.p(spectra), f.p("model"), dir.path().join(out));
        let mut paths: Vec<(&str, &Path)> = vec![("--spectra", &spectra), ("--model", &model), ("--out", &out)];
        let adapter = adapter.map(|a| f.p(a));
        if let Some(a) = &adapter {
            paths.push(("--adapter", a));
        }
        let o = run(&["infer"], &paths);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        ok(o);
        stderr
    };
    let log = infer("desi", None, "zeroshot");
    assert!(log.contains("are at DESI's native resolution"), "{log}");
    assert!(log.contains("learned from spectra at R = 1800") && log.contains("--degrade-to-r 1800"), "{log}");
    for (spectra, adapter) in [("lamost", None), ("desi", Some("adapter-lora"))] {
        let log = infer(spectra, adapter, &format!("{spectra}-{}", adapter.is_some()));
        assert!(!log.contains("resolution"), "{spectra} {adapter:?}: {log}");
    }
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    ok(run(
        TRAIN,
        &[
            ("--spectra", &f.p("lamost")),
            ("--labels", &f.p("lamost-files/labels.parquet")),
            ("--out", &dir.path().join("again")),
        ],
    ));
    for file in ["model.safetensors", "model-card.json"] {
        let a = std::fs::read(f.p(&format!("model/{file}"))).unwrap();
        let b = std::fs::read(dir.path().join("again").join(file)).unwrap();
        assert!(a == b, "same data and seed gave a different {file}");
    }
    // Adapters too: the residual head again from the same base, data and seed, and LoRA and full
    // fine-tuning on labels that make them move (an adapter that keeps its start is trivially
    // reproducible).
    let same = |a: &Path, b: &Path, what: &str| {
        for file in ["adapter.safetensors", "adapter-card.json"] {
            let (x, y) = (std::fs::read(a.join(file)).unwrap(), std::fs::read(b.join(file)).unwrap());
            assert!(x == y, "{what}: same data and seed gave a different {file}");
        }
    };
    let again = dir.path().join("adapter-reshead");
    ok(run(
        &finetune_args("reshead"),
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("desi-files/labels.parquet")),
            ("--model", &f.p("model")),
            ("--out", &again),
        ],
    ));
    same(&f.p("adapter-reshead"), &again, "reshead");
    let moved = moved_adapters();
    for s in ["lora", "full"] {
        let again = dir.path().join(format!("moved-{s}"));
        train_moved(s, &again);
        same(&moved.p(&format!("moved-{s}")), &again, s);
    }
}

#[test]
fn label_tables_read_the_same_from_parquet_and_csv() {
    let f = fixture();
    let spec = LabelSpec::new("TARGETID").with_columns("teff,logg,feh").unwrap();
    let a = read_labels(&f.p("desi-files/labels.parquet"), &spec).unwrap();
    let b = read_labels(&f.p("desi-files/labels.csv"), &spec).unwrap();
    // The CSV carries 4 decimals.
    assert_eq!(a.rows.len(), b.rows.len());
    for (k, l) in &a.rows {
        let c = b.get(*k).unwrap_or_else(|| panic!("{k} missing from the CSV"));
        for p in 0..3 {
            assert!((l.values[p] - c.values[p]).abs() < 1e-4 && (l.errors[p] - c.errors[p]).abs() < 1e-4, "{k}");
        }
    }
    // Galaxies, quasars and sky fibres have no stellar labels.
    assert!(a.unusable.missing_label.count + a.unusable.non_finite.count > 0 && !a.rows.is_empty());
    let bad = read_labels(&f.p("desi-files/labels.parquet"), &LabelSpec::new("nope")).unwrap_err().to_string();
    assert!(bad.contains("labels.parquet") && bad.contains("'nope'"), "{bad}");
}

#[test]
fn adapters_reference_the_base_and_never_train_on_test_stars() {
    let f = fixture();
    let base = card(&f.p("model/model-card.json"))["weights_sha256"].clone();
    for s in ["zeroshot", "full", "lora", "reshead"] {
        let c = card(&f.p(&format!("adapter-{s}/adapter-card.json")));
        assert_eq!(c["kind"], s);
        assert_eq!(c["base_model_sha256"], base);
        assert_eq!(f.p(&format!("adapter-{s}/adapter.safetensors")).exists(), s != "zeroshot");
        let t = &c["training"];
        assert_eq!(t["n_train"].as_u64().unwrap() + t["n_val"].as_u64().unwrap(), 80, "{s}");
    }
    let lora = card(&f.p("adapter-lora/adapter-card.json"));
    assert_eq!(lora["lora"]["rank"], 8);
    assert_eq!(lora["lora"]["layers"], serde_json::json!(["hidden.0", "hidden.1"]));
    // LoRA on 1462→48 and 48→16 at r = 8: 8·(1462+48) + 8·(48+16).
    assert_eq!(lora["n_trainable_parameters"], 8 * (1462 + 48) + 8 * (48 + 16));
    // The same stars for every strategy (same data hash), and none of them in the test split.
    let hashes: Vec<_> = ["full", "lora", "reshead"]
        .iter()
        .map(|s| card(&f.p(&format!("adapter-{s}/adapter-card.json")))["training"]["data_sha256"].clone())
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));

    // Which stars those were: rebuilt from the same data and split, they hash to the cards' data
    // hash, and not one of them is a test star.
    use starpipe::model::card::{ModelCard, SelectionCuts};
    use starpipe::model::split::TestSplit;
    let base: ModelCard = serde_json::from_value(card(&f.p("model/model-card.json"))).unwrap();
    let shards = starpipe::artifacts::discover::shard_paths(&[f.p("desi")], base.input.shard_kind()).unwrap();
    let labels = read_labels(&f.p("desi-files/labels.parquet"), &LabelSpec::new("TARGETID")).unwrap();
    let set = starpipe::model::data::load_labelled(&shards, &base.input, &labels, &SelectionCuts::default()).unwrap();
    let mut unique = Vec::new();
    for k in &set.key {
        if !unique.contains(k) {
            unique.push(*k);
        }
    }
    let split = TestSplit::default();
    let (train, val) = split.training_subset(&unique, 80, 0.2);
    let rows = |keys: &[i64]| (0..set.len()).filter(|&i| keys.contains(&set.key[i])).collect::<Vec<_>>();
    let mut used = rows(&train);
    used.extend(rows(&val));
    assert_eq!(serde_json::json!(set.hash_rows(&used)), hashes[0], "the stars rebuilt are the ones trained on");
    assert!(train.iter().chain(&val).all(|&k| !split.is_test(k)), "a test star reached training or validation");
    assert!(unique.iter().any(|&k| split.is_test(k)), "the set has test stars to keep out");
}

#[test]
fn evaluate_scores_every_strategy_per_regime_on_test_stars() {
    let f = fixture();
    let out = f.p("eval");
    let stdout = ok(run(
        &["evaluate", "--label-key", "TARGETID", "--bootstrap", "100"],
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("desi-files/labels.parquet")),
            ("--model", &f.p("model")),
            ("--adapter", &f.p("adapter-zeroshot")),
            ("--adapter", &f.p("adapter-full")),
            ("--adapter", &f.p("adapter-lora")),
            ("--adapter", &f.p("adapter-reshead")),
            ("--out", &out),
        ],
    ));
    assert!(stdout.contains("test spectra"), "{stdout}");
    let df = ParquetReader::new(std::fs::File::open(out.join("evaluation.parquet")).unwrap()).finish().unwrap();
    let schema = starpipe::schema::evaluation_metrics();
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(names, schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
    // 4 strategies × 3 parameters × 3 regimes, the bare model not repeated.
    assert_eq!(df.height(), 36);
    let strategy = strings(&df, "strategy");
    let regime = strings(&df, "regime");
    let n: Vec<i64> = df.column("n").unwrap().i64().unwrap().into_no_null_iter().collect();
    for s in ["zeroshot", "full (n=80)", "lora (n=80)", "reshead (n=80)"] {
        assert_eq!(strategy.iter().filter(|x| *x == s).count(), 9, "{s}");
    }
    for i in (0..df.height()).step_by(3) {
        assert_eq!(regime[i..i + 3], ["metal-poor", "metal-rich", "all"]);
        assert_eq!(n[i] + n[i + 1], n[i + 2], "regimes must partition the test set");
    }
    let md = std::fs::read_to_string(out.join("evaluation.md")).unwrap();
    assert!(md.contains("| pixels | lora (n=80) | metal-poor |"), "{md}");
    assert_eq!(assert_markdown_tables(&md, "evaluation.md"), 4, "one table per parameter, one per S/N bin");
    // Per-star predictions: every test star once per strategy, none of them used in fine-tuning.
    let per_star =
        ParquetReader::new(std::fs::File::open(out.join("evaluation-predictions.parquet")).unwrap()).finish().unwrap();
    assert_eq!(per_star.height() as i64, 4 * n[2]);
    let split = starpipe::model::split::TestSplit::default();
    for id in per_star.column("source_id").unwrap().i64().unwrap().into_no_null_iter() {
        assert!(split.is_test(id));
    }
    // Coverage per S/N bin, recomputed here from the per-star rows for each head and bin.
    let ps = |c: &str| -> Vec<f64> {
        per_star.column(c).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().into_no_null_iter().collect()
    };
    let (snr, teff, teff_err, teff_ref) = (ps("snr"), ps("teff"), ps("teff_err"), ps("teff_ref"));
    let (ps_input, ps_strategy) = (strings(&per_star, "input"), strings(&per_star, "strategy"));
    let mut checked_bins = 0;
    for head in ["pixels/zeroshot", "pixels/lora (n=80)"] {
        for (lo, hi) in [(4.0, 10.0), (10.0, 20.0), (20.0, 50.0), (50.0, 150.0)] {
            let rows: Vec<usize> = (0..per_star.height())
                .filter(|&i| format!("{}/{}", ps_input[i], ps_strategy[i]) == head && snr[i] >= lo && snr[i] < hi)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let within = rows.iter().filter(|&&i| (teff[i] - teff_ref[i]).abs() < teff_err[i]).count();
            let row = format!("| {head} | {lo}–{hi} | {} | {:.2} |", rows.len(), within as f64 / rows.len() as f64);
            assert!(md.contains(&row), "evaluation.md lacks {row}:\n{md}");
            checked_bins += 1;
        }
    }
    assert!(checked_bins >= 4, "the mock spans several S/N bins");
    // Coverage at 1σ and 2σ and the width of the pulls, per row.
    let col = |c: &str| -> Vec<f64> { df.column(c).unwrap().f64().unwrap().into_no_null_iter().collect() };
    for ((w1, w2), z) in col("within_1sigma").iter().zip(col("within_2sigma")).zip(col("z_robust_sigma")) {
        assert!(*w1 <= w2 && w2 <= 1.0 && z > 0.0 && z.is_finite(), "{w1} {w2} {z}");
    }
    // The report shows coverage and pulls per head, never pooled over strategies: its coverage of
    // each head and parameter is the evaluation's for that head over all test stars, and each head
    // has its own pull distributions.
    let report = f.p("eval-report");
    ok(run(&["report"], &[("--evaluation", &out), ("--out", &report)]));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let (input, strategy, parameter, regime) =
        (strings(&df, "input"), strings(&df, "strategy"), strings(&df, "parameter"), strings(&df, "regime"));
    let within = col("within_1sigma");
    let mut rows = 0;
    for i in (0..df.height()).filter(|&i| regime[i] == "all") {
        let row = format!(
            "<tr><td class=l>{}/{}</td><td class=l>{}</td><td>{}</td><td>{:.3}</td>",
            input[i], strategy[i], parameter[i], n[i], within[i]
        );
        assert!(html.contains(&row), "the report lacks {row}");
        rows += 1;
    }
    assert_eq!(rows, 4 * 3, "four heads, three parameters");
    for g in 0..4 {
        for param in ["teff", "logg", "feh"] {
            let name = format!("pulls_{g:02}_{param}.png");
            let png = std::fs::read(report.join(&name)).unwrap();
            assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{name}");
            assert!(html.contains(&name));
        }
    }
    assert!(!report.join("pulls_teff.png").exists(), "no pooled pull distribution");
}

#[test]
fn infer_predicts_every_spectrum_and_resumes() {
    let f = fixture();
    let out = f.p("pred-lora");
    let args = [
        ("--spectra", f.p("desi")),
        ("--model", f.p("model")),
        ("--adapter", f.p("adapter-lora")),
        ("--out", out.clone()),
    ];
    let args: Vec<(&str, &Path)> = args.iter().map(|(a, p)| (*a, p.as_path())).collect();
    ok(run(&["infer", "--batch-size", "50"], &args));
    let pred = read_parts(&out, "predictions-");
    let spectra = read_spectra(&f.p("desi"));
    assert_eq!(strings(&pred, "spectrum_id"), strings(&spectra, "spectrum_id"));
    let names: Vec<String> = pred.get_column_names().iter().map(|s| s.to_string()).collect();
    let schema = starpipe::schema::predictions();
    assert_eq!(names, schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
    let adapter_sha = card(&f.p("adapter-lora/adapter-card.json"))["weights_sha256"].as_str().unwrap().to_string();
    assert!(strings(&pred, "adapter_sha256").iter().all(|s| *s == adapter_sha));
    for c in ["teff", "teff_err", "logg", "logg_err", "feh", "feh_err"] {
        let v: Vec<f32> = pred.column(c).unwrap().f32().unwrap().into_no_null_iter().collect();
        assert!(v.iter().all(|x| x.is_finite()), "{c}");
        if c.ends_with("_err") {
            assert!(v.iter().all(|x| *x > 0.0), "{c}");
        }
    }
    let ood: Vec<Option<f32>> = pred.column("ood_score").unwrap().f32().unwrap().iter().collect();
    assert!(ood.iter().all(|d| d.is_some_and(|d| d.is_finite() && d >= 0.0)));
    // The batch size does not change the numbers.
    let out2 = f.p("pred-lora-big-batch");
    let mut args2 = args.clone();
    args2[3] = ("--out", out2.as_path());
    ok(run(&["infer", "--batch-size", "4096"], &args2));
    let a: Vec<f32> = pred.column("feh").unwrap().f32().unwrap().into_no_null_iter().collect();
    let b: Vec<f32> =
        read_parts(&out2, "predictions-").column("feh").unwrap().f32().unwrap().into_no_null_iter().collect();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    // A second run keeps the finished shards.
    let again = ok(run(&["infer"], &args));
    assert!(again.contains("0 spectra in 0 shard(s) (1 kept"), "{again}");
}

#[test]
fn infer_reads_real_lamost_shards_on_a_wider_grid() {
    // Real files ingested on the full LAMOST grid; the model reads its window out of it.
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    ingest(Survey::Lamost, &data("real/lamost"), &dir.path().join("real"));
    ok(run(
        &["infer"],
        &[("--spectra", &dir.path().join("real")), ("--model", &f.p("model")), ("--out", &dir.path().join("pred"))],
    ));
    let pred = read_parts(&dir.path().join("pred"), "predictions-");
    assert_eq!(pred.height(), read_spectra(&dir.path().join("real")).height());
    let teff: Vec<f32> = pred.column("teff").unwrap().f32().unwrap().into_no_null_iter().collect();
    assert!(teff.iter().all(|t| (2000.0..15000.0).contains(t)), "{teff:?}");
    // The quasar among the real files is far from every training star.
    let ids = strings(&pred, "spectrum_id");
    let ood: Vec<f32> = pred.column("ood_score").unwrap().f32().unwrap().into_no_null_iter().collect();
    let qso = ids.iter().position(|s| s.contains("1247301004")).expect("the DR13 QSO file is ingested");
    let stars_max = ood.iter().enumerate().filter(|(i, _)| *i != qso).map(|(_, d)| *d).fold(0.0, f32::max);
    assert!(ood[qso] > 3.0 * stars_max, "qso {} vs stars max {stars_max}", ood[qso]);
}

#[test]
fn mismatched_inputs_are_refused_with_the_file_and_reason() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    // An adapter trained on another base model.
    ok(run(
        &["train", "--hidden", "8", "--max-epochs", "1", "--seed", "9"],
        &[
            ("--spectra", &f.p("lamost")),
            ("--labels", &f.p("lamost-files/labels.parquet")),
            ("--out", &dir.path().join("other")),
        ],
    ));
    let out = run(
        &["infer"],
        &[
            ("--spectra", &f.p("desi")),
            ("--model", &dir.path().join("other")),
            ("--adapter", &f.p("adapter-lora")),
            ("--out", &dir.path().join("p")),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("adapter-card.json") && err.contains("base model"), "{err}");
    // A label table without the key column.
    let out = run(
        &["train", "--label-key", "targetid"],
        &[
            ("--spectra", &f.p("lamost")),
            ("--labels", &f.p("lamost-files/labels.parquet")),
            ("--out", &dir.path().join("m")),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("labels.parquet") && err.contains("'targetid'"), "{err}");
    // Spectra on a grid that misses either end of the model's window (3999-5599 Å): the shard is
    // named, the missing end said in Å, and nothing half-written is left.
    for (lo, hi, says) in [("3900", "5500", "ends at"), ("4100", "5700", "starts at")] {
        let (spectra, pred) = (dir.path().join(format!("short-{lo}")), dir.path().join(format!("pred-{lo}")));
        ok(run(
            &["ingest", "--survey", "lamost", "--no-progress", "--wave-min", lo, "--wave-max", hi],
            &[("--input", &data("real/lamost")), ("--out", &spectra)],
        ));
        let out = run(&["infer"], &[("--spectra", &spectra), ("--model", &f.p("model")), ("--out", &pred)]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("spectra-00000") && text.contains(says) && text.contains(" Å"), "{text}");
        let left: Vec<_> = std::fs::read_dir(&pred).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "nothing written for a refused shard: {left:?}");
    }
    // --device cuda in a CPU build.
    let out = run(
        &["infer", "--device", "cuda"],
        &[("--spectra", &f.p("desi")), ("--model", &f.p("model")), ("--out", &dir.path().join("p"))],
    );
    if !cfg!(feature = "cuda") {
        assert!(String::from_utf8_lossy(&out.stderr).contains("cuda"));
        assert!(!out.status.success());
    }
}

#[test]
fn evaluate_scores_real_lamost_spectra_against_a_csv_catalogue() {
    // 25 real LAMOST DR10 spectra with PyLASP labels (CSV, custom column names); --test-fraction 1
    // scores every star, as for a survey the model never adapted to.
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    ingest(Survey::Lamost, &data("lamost_dr10_pylasp"), &dir.path().join("dr10"));
    let out = dir.path().join("eval");
    let stdout = ok(run(
        &[
            "evaluate",
            "--label-key",
            "obsid",
            "--label-columns",
            "curvefit_teff,curvefit_logg,curvefit_feh",
            "--test-fraction",
            "1",
            "--bootstrap",
            "50",
        ],
        &[
            ("--spectra", &dir.path().join("dr10")),
            ("--labels", &data("lamost_dr10_pylasp/lamost_dr10_pylasp_labels.csv")),
            ("--model", &f.p("model")),
            ("--out", &out),
        ],
    ));
    assert!(stdout.contains("evaluate: 25 test spectra"), "{stdout}");
    let df = ParquetReader::new(std::fs::File::open(out.join("evaluation.parquet")).unwrap()).finish().unwrap();
    assert_eq!(df.height(), 9);
    let n: Vec<i64> = df.column("n").unwrap().i64().unwrap().into_no_null_iter().collect();
    // One of the 25 has [Fe/H] = −1.04 by CurveFit: the metal-poor regime.
    assert_eq!(&n[..3], &[1, 24, 25]);
    let refs: Vec<f64> = ParquetReader::new(std::fs::File::open(out.join("evaluation-predictions.parquet")).unwrap())
        .finish()
        .unwrap()
        .column("teff_ref")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(refs.iter().all(|t| (3900.0..6300.0).contains(t)), "{refs:?}");
}

#[test]
fn infer_goes_on_past_a_broken_shard_and_reports_it() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    let good = read_dir_names(&f.p("desi"), "spectra-");
    std::fs::copy(f.p("desi").join(&good[0]), shards.join("spectra-a.parquet")).unwrap();
    std::fs::write(shards.join("spectra-b.parquet"), b"PAR1 not really").unwrap();
    let out =
        run(&["infer"], &[("--spectra", &shards), ("--model", &f.p("model")), ("--out", &dir.path().join("pred"))]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a failed shard must fail the run: {stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("spectra-b.parquet"), "{stdout}");
    let written = read_dir_names(&dir.path().join("pred"), "");
    assert_eq!(written, vec!["predictions-a.parquet".to_string()], "no temporary file may be left");
}

fn read_dir_names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// The OOD score measures distance from what pre-training saw, so it is the same whatever the
/// adapter: full fine-tuning and LoRA change the estimates, not the score.
#[test]
fn ood_scores_use_the_pretrained_features_under_every_adapter() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let read = |adapter: Option<&str>| -> (Vec<Option<f32>>, Vec<Option<f32>>) {
        let out = dir.path().join(format!("pred-{}", adapter.unwrap_or("base")));
        let mut paths = vec![("--spectra", f.p("desi")), ("--model", f.p("model")), ("--out", out.clone())];
        if let Some(a) = adapter {
            let dir = if a.starts_with("moved-") { a.to_string() } else { format!("adapter-{a}") };
            paths.push(("--adapter", f.p(&dir)));
        }
        let borrowed: Vec<(&str, &Path)> = paths.iter().map(|(k, p)| (*k, p.as_path())).collect();
        ok(run(&["infer"], &borrowed));
        let shard = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "parquet"))
            .unwrap();
        let df = ParquetReader::new(std::fs::File::open(shard).unwrap()).finish().unwrap();
        let col = |c: &str| -> Vec<Option<f32>> {
            df.column(c).unwrap().cast(&DataType::Float32).unwrap().f32().unwrap().iter().collect()
        };
        (col("ood_score"), col("teff"))
    };
    let (base_ood, base_teff) = read(None);
    assert!(base_ood.iter().all(|v| v.is_some()));
    moved_adapters();
    // Adapters that trained (moved-*) must change the estimates, so the equal scores mean
    // something; the fixture's own adapters must keep the score too.
    for a in ["moved-full", "moved-lora"] {
        let (ood, teff) = read(Some(a));
        assert_eq!(ood, base_ood, "{a}: the OOD score must not depend on the adapter");
        assert_ne!(teff, base_teff, "{a} trained, so its estimates differ from zero-shot");
    }
    for a in ["full", "lora", "reshead"] {
        assert_eq!(read(Some(a)).0, base_ood, "{a}: the OOD score must not depend on the adapter");
    }
}

/// Errors that hold: on new stars drawn like the training set (another seed of the same mock), the
/// calibrated σ covers about 68 % of |Δ| per parameter — not the 0.68 the calibration stars give by
/// construction, but stars that had no say in it.
#[test]
fn calibrated_errors_cover_about_68_percent_of_new_stars() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("new-files");
    let stars = generate_lamost(&files, starpipe::mock::Stars::builtin(), 300, 9, SNR, 0.0, &|| {}).unwrap();
    write_label_catalog(&files, &stars).unwrap();
    ingest_specclip(Survey::Lamost, &files, &dir.path().join("new"));
    let out = dir.path().join("eval");
    ok(run(
        &["evaluate", "--label-key", "obsid", "--test-fraction", "1", "--bootstrap", "20"],
        &[
            ("--spectra", &dir.path().join("new")),
            ("--labels", &files.join("labels.parquet")),
            ("--model", &f.p("model")),
            ("--out", &out),
        ],
    ));
    let df =
        ParquetReader::new(std::fs::File::open(out.join("evaluation-predictions.parquet")).unwrap()).finish().unwrap();
    let num = |c: &str| -> Vec<f64> {
        df.column(c).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().into_no_null_iter().collect()
    };
    for p in ["teff", "logg", "feh"] {
        let (v, e, r) = (num(p), num(&format!("{p}_err")), num(&format!("{p}_ref")));
        let covered = (0..v.len()).filter(|&i| (v[i] - r[i]).abs() < e[i]).count() as f64 / v.len() as f64;
        assert!(v.len() > 250 && (0.5..=0.85).contains(&covered), "{p}: {covered:.3} of {} within 1σ", v.len());
    }
}

/// `calibrate` on another survey's stars: the copy keeps the weights, its card holds the error
/// model, and predictions through it report σ = √((k·σ_net)² + floor² + (snr_term/snr)²) with the
/// same values.
#[test]
fn calibrate_writes_a_copy_whose_errors_follow_the_fitted_error_model() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cal = tmp.path().join("model-cal");
    let stdout = ok(run(
        &["calibrate", "--label-key", "TARGETID"],
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("desi-files/labels.parquet")),
            ("--model", &f.p("model")),
            ("--out", &cal),
        ],
    ));
    assert!(stdout.contains("k ") && stdout.contains("floor"), "{stdout}");
    assert_eq!(
        std::fs::read(cal.join("model.safetensors")).unwrap(),
        std::fs::read(f.p("model/model.safetensors")).unwrap()
    );
    let c = card(&cal.join("model-card.json"));
    let em = &c["error_model"];
    let n_labelled = read_labels(&f.p("desi-files/labels.parquet"), &LabelSpec::new("TARGETID")).unwrap().rows.len();
    for p in 0..3 {
        let (k, floor) = (em["scale"][p].as_f64().unwrap(), em["floor"][p].as_f64().unwrap());
        assert!(k > 0.05 && floor >= 0.0, "parameter {p}: k {k}, floor {floor}");
        let used = em["n_used"][p].as_u64().unwrap() + em["n_rejected"][p].as_u64().unwrap();
        assert!(used > 100 && used as usize <= n_labelled, "{used} of {n_labelled}");
        // Sized so that 68.27 % of the stars it was fitted on are within 1σ.
        let cov = em["coverage_1sigma"][p].as_f64().unwrap();
        assert!((0.66..0.71).contains(&cov), "parameter {p}: coverage {cov}");
        assert!(em["coverage_2sigma"][p].as_f64().unwrap() > cov);
    }
    assert_eq!(em["label_table"], f.p("desi-files/labels.parquet").display().to_string());
    // Coverage per S/N bin, recorded and printed: the bins hold the stars the model was fitted on
    // (S/N 20-150 here), each bin's fraction a real fraction.
    let bins = em["coverage_by_snr"].as_array().unwrap();
    assert_eq!(bins.len(), 4);
    let counted: u64 = bins.iter().map(|b| b["n"].as_u64().unwrap()).sum();
    assert!(counted > 100 && counted as usize <= n_labelled, "{counted}");
    assert!(
        bins.iter().all(|b| b["within_1sigma"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| (0.0..=1.0).contains(&w.as_f64().unwrap())))
    );
    assert!(stdout.contains("per S/N bin") && stdout.contains("S/N  50–150"), "{stdout}");
    // The OOD threshold these stars set reaches the prediction shards, for the catalogue.
    let threshold = em["ood_threshold"].as_f64().unwrap();
    assert!(threshold > 0.0);
    // The original card is untouched, and calibrating in place is refused.
    assert!(card(&f.p("model/model-card.json")).get("error_model").is_none());
    let refused = run(
        &["calibrate", "--label-key", "TARGETID"],
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("desi-files/labels.parquet")),
            ("--model", &f.p("model")),
            ("--out", &f.p("model")),
        ],
    );
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("elsewhere"));

    let predict = |model: &Path, out: &Path| -> DataFrame {
        ok(run(&["infer"], &[("--spectra", &f.p("desi")), ("--model", model), ("--out", out)]));
        let shard = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "parquet"))
            .unwrap();
        ParquetReader::new(std::fs::File::open(shard).unwrap()).finish().unwrap()
    };
    let (plain, calibrated) = (predict(&f.p("model"), &tmp.path().join("p0")), predict(&cal, &tmp.path().join("p1")));
    let shard = std::fs::read_dir(tmp.path().join("p1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let kv = starpipe::io::read_key_value_metadata(&shard).unwrap();
    let recorded = kv.iter().find(|(k, _)| k == "starpipe.infer.ood_threshold").map(|(_, v)| v.parse::<f64>().unwrap());
    assert_eq!(recorded, Some(threshold));
    // The reconstruction χ²: computed for every spectrum of a pixel model, near 1 for the mock
    // stars (drawn from the same emulator), its calibrated threshold recorded for the catalogue.
    let chi2: Vec<f32> = calibrated.column("chi2_red").unwrap().f32().unwrap().into_no_null_iter().collect();
    assert_eq!(chi2.len(), calibrated.height());
    let mut sorted = chi2.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!((0.2..3.0).contains(&median), "median χ² {median}");
    let chi2_threshold = em["chi2_threshold"].as_f64().unwrap();
    let recorded =
        kv.iter().find(|(k, _)| k == "starpipe.infer.chi2_threshold").map(|(_, v)| v.parse::<f64>().unwrap());
    assert_eq!(recorded, Some(chi2_threshold));
    // The shards say whether the errors are calibrated, and the catalogue flags the rows of a head
    // that is not (saying so once), never those of one that is.
    let calibration = starpipe::artifacts::metadata::get(&kv, "starpipe.infer.calibration").unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(calibration).unwrap();
    assert_eq!(record["n_used"], em["n_used"], "{calibration}");
    let mut catalogues = Vec::new();
    for (pred, calibrated) in [("p0", false), ("p1", true)] {
        let cat = tmp.path().join(format!("cat-{pred}.parquet"));
        let out = run(
            &["catalog"],
            &[("--spectra", &f.p("desi")), ("--predictions", &tmp.path().join(pred)), ("--out", &cat)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stderr.matches("UNCALIBRATED").count(), usize::from(!calibrated), "{stderr}");
        let df = ParquetReader::new(std::fs::File::open(&cat).unwrap()).finish().unwrap();
        let flags: Vec<u32> = df.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
        let success: Vec<bool> =
            df.column("success").unwrap().bool().unwrap().iter().map(|b| b == Some(true)).collect();
        for (f, ok) in flags.iter().zip(&success) {
            assert_eq!(f & (1 << 5) != 0, *ok && !calibrated, "{pred}: flags {f:#x}");
        }
        let kv = starpipe::io::read_key_value_metadata(&cat).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(starpipe::artifacts::metadata::get(&kv, "starpipe").unwrap()).unwrap();
        assert_eq!(meta["heads"][0]["calibrated"], calibrated);
        catalogues.push(df);
    }
    let sigma_scale = card(&f.p("model/model-card.json"))["sigma_scale"].clone();
    let col =
        |df: &DataFrame, c: &str| -> Vec<f32> { df.column(c).unwrap().f32().unwrap().into_no_null_iter().collect() };
    // Each row's S/N sets its S/N term: the catalogue rows (same spectra, same order) carry it.
    let snr = col(&catalogues[0], "snr");
    assert_eq!(snr, col(&catalogues[1], "snr"));
    for (p, name) in ["teff", "logg", "feh"].iter().enumerate() {
        assert_eq!(col(&plain, name), col(&calibrated, name), "values do not change");
        let (k, floor) = (em["scale"][p].as_f64().unwrap(), em["floor"][p].as_f64().unwrap());
        let snr_term = em.get("snr_term").map_or(0.0, |t| t[p].as_f64().unwrap());
        let s0 = sigma_scale[p].as_f64().unwrap();
        let err = format!("{name}_err");
        for ((e0, e1), q) in col(&catalogues[0], &err).iter().zip(col(&catalogues[1], &err)).zip(&snr) {
            let expected = (k * *e0 as f64 / s0).hypot(floor).hypot(snr_term / *q as f64);
            assert!((e1 as f64 - expected).abs() < 1e-4 * expected, "{name}: {e1} vs {expected}");
        }
    }
    // An adapter is calibrated the same way, into a copy of the adapter directory.
    let cal_lora = tmp.path().join("lora-cal");
    ok(run(
        &["calibrate", "--label-key", "TARGETID"],
        &[
            ("--spectra", &f.p("desi")),
            ("--labels", &f.p("desi-files/labels.parquet")),
            ("--model", &f.p("model")),
            ("--adapter", &f.p("adapter-lora")),
            ("--out", &cal_lora),
        ],
    ));
    assert_eq!(
        std::fs::read(cal_lora.join("adapter.safetensors")).unwrap(),
        std::fs::read(f.p("adapter-lora/adapter.safetensors")).unwrap()
    );
    assert!(card(&cal_lora.join("adapter-card.json"))["error_model"]["scale"].is_array());
    ok(run(
        &["infer"],
        &[
            ("--spectra", &f.p("desi")),
            ("--model", &f.p("model")),
            ("--adapter", &cal_lora),
            ("--out", &tmp.path().join("p2")),
        ],
    ));
}

/// `repeats` end to end: real MILES stars rendered four times each as LAMOST and as DESI files,
/// catalogued by the fixture's model; pairs found through the label tables' library ids.
#[test]
fn repeats_pairs_spectra_of_one_star_within_and_across_surveys() {
    use starpipe::mock::{Library, Stars};
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| tmp.path().join(rel);
    let lib = Library::open(&data("miles_sample")).unwrap();
    let stars = Stars::Library { library: &lib, repeats: 4 };
    let snr = SnrDistribution { min: 40.0, max: 80.0 };
    let rendered = generate_lamost(&p("lamost-files"), stars, 0, 5, snr, 0.0, &|| {}).unwrap();
    write_label_catalog(&p("lamost-files"), &rendered).unwrap();
    let rows = generate_desi(&p("desi-files"), stars, 0, 8, 6, snr, 0.0, &Default::default(), &|| {}).unwrap();
    write_desi_labels(&p("desi-files"), &rows).unwrap();
    for (survey, name) in [(Survey::Lamost, "lamost"), (Survey::Desi, "desi")] {
        ingest_specclip(survey, &p(&format!("{name}-files")), &p(name));
        ok(run(
            &["infer"],
            &[("--spectra", &p(name)), ("--model", &f.p("model")), ("--out", &p(&format!("pred-{name}")))],
        ));
        ok(run(
            &["catalog", "--format", "parquet"],
            &[
                ("--spectra", &p(name)),
                ("--predictions", &p(&format!("pred-{name}"))),
                ("--out", &p(&format!("{name}.parquet"))),
            ],
        ));
    }
    let (ids_lamost, ids_desi) = (p("lamost-files/labels.parquet"), p("desi-files/labels.parquet"));
    let stdout = ok(run(
        &[
            "repeats",
            "--star-id-column",
            "library_id",
            "--star-ids",
            ids_lamost.to_str().unwrap(),
            ids_desi.to_str().unwrap(),
        ],
        &[("--catalog", &p("lamost.parquet")), ("--catalog", &p("desi.parquet")), ("--out", &p("checks"))],
    ));
    assert!(
        stdout.contains("| repeat lamost.parquet |") && stdout.contains("| cross lamost.parquet → desi.parquet |"),
        "{stdout}"
    );
    let df = ParquetReader::new(std::fs::File::open(p("checks/repeats.parquet")).unwrap()).finish().unwrap();
    let kind = strings(&df, "kind");
    let n: Vec<i64> = df.column("n_pairs").unwrap().i64().unwrap().into_no_null_iter().collect();
    // 5 stars × 3 consecutive pairs in each survey (three parameters each), and 5 stars in both.
    assert_eq!(kind.iter().filter(|k| *k == "repeat").count(), 6);
    assert_eq!(kind.iter().filter(|k| *k == "cross").count(), 3);
    for (k, n) in kind.iter().zip(&n) {
        assert_eq!(*n, if k == "repeat" { 15 } else { 5 }, "{k}");
    }
    let scatter: Vec<f64> = df.column("scatter").unwrap().f64().unwrap().into_no_null_iter().collect();
    let claimed: Vec<f64> = df.column("claimed_error").unwrap().f64().unwrap().into_no_null_iter().collect();
    assert!(scatter.iter().chain(&claimed).all(|v| v.is_finite() && *v >= 0.0) && claimed.iter().all(|c| *c > 0.0));
    let md = std::fs::read_to_string(p("checks/repeats.md")).unwrap();
    assert!(md.contains("median offset"));
    assert_eq!(assert_markdown_tables(&md, "repeats.md"), 1);
    // Two surveys whose star ids never meet (here: offset on purpose): repeats are scored, and the
    // missing cross-survey comparison is said, with the way to pair them.
    let apart_desi = p("desi-ids-apart.parquet");
    let script = format!(
        "import duckdb; duckdb.sql(\"COPY (SELECT TARGETID, library_id + 1000000 AS library_id FROM '{}') TO '{}' (FORMAT parquet)\")",
        ids_desi.display(),
        apart_desi.display()
    );
    let made = std::process::Command::new(python("duckdb")).args(["-c", &script]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let apart = ok(run(
        &[
            "repeats",
            "--star-id-column",
            "library_id",
            "--star-ids",
            ids_lamost.to_str().unwrap(),
            apart_desi.to_str().unwrap(),
        ],
        &[("--catalog", &p("lamost.parquet")), ("--catalog", &p("desi.parquet")), ("--out", &p("apart"))],
    ));
    assert!(apart.contains("no cross-survey pair") && apart.contains("--star-ids"), "{apart}");
    let md = std::fs::read_to_string(p("apart/repeats.md")).unwrap();
    assert!(md.contains("no cross-survey pair"), "{md}");
    // Two surveys without any star id: nothing pairs at all, said with the way out.
    let none = run(
        &["repeats"],
        &[("--catalog", &p("lamost.parquet")), ("--catalog", &p("desi.parquet")), ("--out", &p("none2"))],
    );
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success() && err.contains("--star-ids"), "{err}");
    // Without star ids a LAMOST obsid never repeats: nothing to pair, said plainly.
    let none = run(&["repeats"], &[("--catalog", &p("lamost.parquet")), ("--out", &p("none"))]);
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success() && err.contains("no pair of spectra") && err.contains("--star-ids"), "{err}");
}

/// `--augment`: seeded, so the same seed trains the same weights, recorded in the card, and not
/// the weights of plain training; refused for embedding models.
#[test]
fn augmented_training_is_reproducible_and_recorded() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let train = |out: &Path, augment: bool| {
        let mut args = vec!["train", "--hidden", "32,8", "--max-epochs", "2", "--batch-size", "64", "--seed", "5"];
        if augment {
            args.push("--augment");
        }
        ok(run(
            &args,
            &[("--spectra", &f.p("lamost")), ("--labels", &f.p("lamost-files/labels.parquet")), ("--out", out)],
        ));
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    let (a, b, plain) =
        (train(&tmp.path().join("a"), true), train(&tmp.path().join("b"), true), train(&tmp.path().join("c"), false));
    assert_eq!(a, b, "same seed, same augmented weights");
    assert_ne!(a, plain);
    let c = card(&tmp.path().join("a/model-card.json"));
    assert!(c["training"]["fit"]["augment"]["noise"].as_f64().unwrap() > 0.0, "{}", c["training"]["fit"]);
    assert!(card(&tmp.path().join("c/model-card.json"))["training"]["fit"].get("augment").is_none());
}

/// `--precision bf16` training (mixed precision): it learns, the card says how it was trained, and
/// the weights written are the f32 master weights, which infer reads like any other model.
#[test]
fn bf16_mixed_precision_training_learns_keeps_f32_weights_and_is_recorded() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bf16");
    ok(run(
        &["train", "--hidden", "32,8", "--max-epochs", "3", "--batch-size", "64", "--seed", "5", "--precision", "bf16"],
        &[("--spectra", &f.p("lamost")), ("--labels", &f.p("lamost-files/labels.parquet")), ("--out", &out)],
    ));
    let c = card(&out.join("model-card.json"));
    assert_eq!(c["training"]["fit"]["precision"], "bf16", "{}", c["training"]["fit"]);
    let report = &c["training"]["report"];
    assert!(report["best_val_loss"].as_f64().unwrap() < report["initial_val_loss"].as_f64().unwrap(), "{report}");
    // The safetensors header names every tensor's dtype.
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let dtypes: Vec<&str> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["dtype"].as_str().unwrap())
        .collect();
    assert!(!dtypes.is_empty() && dtypes.iter().all(|d| *d == "F32"), "{dtypes:?}");
    ok(run(
        &["infer", "--device", "cpu"],
        &[("--spectra", &f.p("lamost")), ("--model", &out), ("--out", &tmp.path().join("pred"))],
    ));
    assert!(card(&f.p("model/model-card.json"))["training"]["fit"].get("precision").is_none(), "f32 is not written");
}

#[test]
fn bf16_inference_agrees_with_f32_and_is_recorded() {
    let f = fixture();
    let (f32_out, bf16_out) = (f.p("pred-f32"), f.p("pred-bf16"));
    let (spectra, model, adapter) = (f.p("desi"), f.p("model"), f.p("adapter-reshead"));
    let infer = |precision: &str, out: &Path| {
        ok(run(
            &["infer", "--device", "cpu", "--precision", precision],
            &[("--spectra", &spectra), ("--model", &model), ("--adapter", &adapter), ("--out", out)],
        ))
    };
    infer("f32", &f32_out);
    infer("bf16", &bf16_out);
    let (a, b) = (read_parts(&f32_out, "predictions-"), read_parts(&bf16_out, "predictions-"));
    assert_eq!(strings(&a, "spectrum_id"), strings(&b, "spectrum_id"));
    // bf16 rounds each op at ~0.4 %: predictions stay within 1 % of a typical label spread plus
    // 1 % of the value (e.g. 10 K + 1 % in Teff).
    for (c, spread) in [("teff", 1000.0f32), ("logg", 1.0), ("feh", 0.5), ("teff_err", 1000.0), ("feh_err", 0.5)] {
        let x: Vec<f32> = a.column(c).unwrap().f32().unwrap().into_no_null_iter().collect();
        let y: Vec<f32> = b.column(c).unwrap().f32().unwrap().into_no_null_iter().collect();
        let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs() / (0.01 * (spread + p.abs()))).fold(0.0, f32::max);
        assert!(worst <= 1.0, "{c}: bf16 differs from f32 by {worst} × the tolerance");
        assert!(x != y, "{c}: bf16 gave bit-identical numbers, so it did not run in bf16");
    }
    let shard = std::fs::read_dir(&bf16_out).unwrap().map(|e| e.unwrap().path()).next().unwrap();
    let precision = |shard: &Path| {
        let kv = starpipe::io::read_key_value_metadata(shard).unwrap();
        kv.into_iter().find(|(k, _)| k == "starpipe.infer.precision").map(|(_, v)| v)
    };
    assert_eq!(precision(&shard).as_deref(), Some("bf16"));
    // A shard computed in one precision is not kept for a run asking for the other.
    let again = infer("f32", &bf16_out);
    assert!(again.contains("(0 kept"), "{again}");
    assert_eq!(precision(&shard).as_deref(), Some("f32"));
}

/// `report --star`: a chosen spectrum drawn with its reconstruction, whose χ² is the catalogue's
/// `chi2_red` (the same check, the same window), with the flag names of its bits; an id the
/// catalogue lacks is refused by name.
#[test]
fn report_draws_chosen_spectra_with_the_reconstruction_behind_their_chi2() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (pred, cat) = (tmp.path().join("pred"), tmp.path().join("cat.parquet"));
    ok(run(&["infer"], &[("--spectra", &f.p("desi")), ("--model", &f.p("model")), ("--out", &pred)]));
    ok(run(&["catalog"], &[("--spectra", &f.p("desi")), ("--predictions", &pred), ("--out", &cat)]));
    let df = ParquetReader::new(std::fs::File::open(&cat).unwrap()).finish().unwrap();
    let ids: Vec<String> =
        df.column("spectrum_id").unwrap().str().unwrap().iter().map(|s| s.unwrap_or("").to_string()).collect();
    let flags: Vec<u32> = df.column("quality_flags").unwrap().u32().unwrap().into_no_null_iter().collect();
    let chi2: Vec<f32> = df.column("chi2_red").unwrap().f32().unwrap().into_no_null_iter().collect();
    let success: Vec<bool> = df.column("success").unwrap().bool().unwrap().iter().map(|b| b == Some(true)).collect();
    // The worst-fitting spectrum with estimates, and one with the most flag bits.
    let worst = (0..ids.len()).filter(|&i| success[i]).max_by(|&a, &b| chi2[a].total_cmp(&chi2[b])).unwrap();
    let flagged = (0..ids.len()).filter(|&i| success[i]).max_by_key(|&i| flags[i].count_ones()).unwrap();
    let report = tmp.path().join("report");
    ok(run(
        &["report", "--star", &ids[worst], "--star", &ids[flagged]],
        &[("--catalog", &cat), ("--spectra", &f.p("desi")), ("--model", &f.p("model")), ("--out", &report)],
    ));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    for (k, &i) in [worst, flagged].iter().enumerate() {
        assert!(report.join(format!("star_{k:02}.png")).exists());
        let row = html.lines().find(|l| l.contains(&format!("<td class=l>{}</td>", ids[i]))).unwrap();
        // χ² (catalogue) and χ² (figure) cells agree: the figure is the reconstruction behind it.
        let cells: Vec<&str> = row.split("<td>").map(|c| c.split('<').next().unwrap()).collect();
        let n = cells.len();
        assert_eq!(cells[n - 2], cells[n - 1].trim_end(), "{row}");
        assert_eq!(cells[n - 2], format!("{:.2}", chi2[i]), "{row}");
        for f in starpipe::catalog::flags::ALL.iter().filter(|f| flags[i] & f.mask() != 0) {
            assert!(row.contains(f.name()), "{row} lacks {}", f.name());
        }
    }
    let refused = run(
        &["report", "--star", "no-such-spectrum"],
        &[("--catalog", &cat), ("--spectra", &f.p("desi")), ("--out", &tmp.path().join("r2"))],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("no-such-spectrum"), "{stderr}");
}
