//! `starpipe evaluate`: score a model and its adapters on the held-out test stars of a labelled
//! survey, per parameter × [Fe/H] regime × strategy, as Markdown and Parquet.

use crate::artifacts::discover::shard_paths;
use crate::io::write_small_table;
use crate::labels::{LabelSpec, read_labels};
use crate::model::card::{AdapterCard, SelectionCuts, learned_resolutions};
use crate::model::data::load_labelled;
use crate::model::mlp::{Adapter, Network};
use crate::model::predict::{Estimate, predict_standardized, to_physical};
use crate::model::split::TestSplit;
use crate::model::store::{load_adapter, load_model};
use crate::model::{ModelError, PARAMETERS, Parameter, Result};
use crate::nn::device::ComputeDevice;
use crate::trust::metrics::{self, Metrics};
use crate::trust::resolution::{Resolution, shard_resolutions, warn_on_resolution_mismatch};
use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// [Fe/H] below which a star is metal-poor (the split of arXiv 2602.15021).
pub const METAL_POOR_FEH: f64 = -1.0;
pub const REGIMES: [&str; 3] = ["metal-poor", "metal-rich", "all"];

#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub spectra: Vec<PathBuf>,
    pub labels: PathBuf,
    pub label_spec: LabelSpec,
    pub model: PathBuf,
    /// Adapter directories; the bare model is scored as `zeroshot` too unless one of them is the
    /// zero-shot adapter.
    pub adapters: Vec<PathBuf>,
    /// Test split when no adapter says which (all adapters must agree).
    pub split: TestSplit,
    /// An embedding-based model scored beside the pixel one, with hybrids of the two.
    pub embedding: Option<EmbeddingSide>,
    pub selection: SelectionCuts,
    pub out: PathBuf,
    pub n_boot: usize,
    pub device: ComputeDevice,
}

/// The embedding model of a pixels-vs-embeddings comparison.
#[derive(Debug, Clone)]
pub struct EmbeddingSide {
    /// Embedding shards of the same spectra.
    pub spectra: Vec<PathBuf>,
    pub model: PathBuf,
    pub adapters: Vec<PathBuf>,
}

/// One row of the metrics table.
#[derive(Debug, Clone)]
pub struct MetricsRow {
    pub input: String,
    pub strategy: String,
    pub adapter_kind: String,
    pub n_train: usize,
    pub parameter: Parameter,
    pub regime: &'static str,
    pub metrics: Metrics,
    pub model_sha256: String,
    pub adapter_sha256: String,
}

#[derive(Debug, Clone)]
pub struct EvaluationSummary {
    pub n_test: usize,
    pub rows: Vec<MetricsRow>,
    /// Per head (`input/strategy`): coverage at 1σ per S/N bin.
    pub snr_coverage: Vec<(String, Vec<metrics::SnrCoverage>)>,
    /// The encoder behind the embedding heads, in words (from the embedding shards' metadata),
    /// when embedding heads were scored.
    pub encoder: Option<String>,
    pub markdown: PathBuf,
    pub parquet: PathBuf,
}

fn regime_of(feh: f64, regime: &str) -> bool {
    match regime {
        "metal-poor" => feh < METAL_POOR_FEH,
        "metal-rich" => feh >= METAL_POOR_FEH,
        _ => true,
    }
}

/// One model (and adapter) scored on the test stars: per-star reference labels and estimates.
struct Scored {
    input: &'static str,
    strategy: String,
    adapter_kind: String,
    n_train: usize,
    model_sha256: String,
    adapter_sha256: String,
    spectrum_id: Vec<String>,
    key: Vec<i64>,
    snr: Vec<f32>,
    reference: Vec<[f64; 3]>,
    est: Vec<Estimate>,
}

/// Scores a model and its adapters (plus the bare model as zero-shot unless an adapter is the
/// zero-shot one) on the test stars of `split` (or of the adapters' own split).
fn score_model(
    spectra: &[PathBuf],
    model: &Path,
    adapters: &[PathBuf],
    labels: &crate::labels::LabelTable,
    opts: &EvaluateOptions,
    split: &mut Option<TestSplit>,
    dev: &candle_core::Device,
) -> Result<Vec<Scored>> {
    let (base, base_card) = load_model(model, dev)?;
    let input = base_card.input.clone();
    let mut strategies: Vec<(Adapter, Option<AdapterCard>)> = Vec::new();
    for dir in adapters {
        let (a, c) = load_adapter(dir, &base, &base_card, dev)?;
        strategies.push((a, Some(c)));
    }
    if !strategies.iter().any(|(a, _)| matches!(a, Adapter::ZeroShot)) {
        strategies.insert(0, (Adapter::ZeroShot, None));
    }
    for c in strategies.iter().filter_map(|(_, c)| c.as_ref()) {
        match split {
            None => *split = Some(c.test_split),
            Some(s) if *s != c.test_split => {
                return Err(ModelError::Invalid(format!(
                    "adapters disagree on the test split ({:?} vs {:?}): their scores would not be comparable",
                    c.test_split, s
                )));
            }
            Some(_) => {}
        }
    }
    let split = *split.get_or_insert(opts.split);
    let shards = shard_paths(spectra, input.shard_kind())?;
    let set = load_labelled(&shards, &input, labels, &opts.selection)?;
    let test_rows: Vec<usize> = (0..set.len()).filter(|&i| split.is_test(set.key[i])).collect();
    if test_rows.is_empty() {
        return Err(ModelError::bad(&opts.labels, "no labelled test stars in these spectra"));
    }
    let test = set.dataset(&test_rows, &base_card.label_scaling);
    // Once per model and per adapter that learned from other shards than the model.
    let found = shard_resolutions(&shards);
    let mut checked: Vec<&[Resolution]> = Vec::new();
    let cards = strategies.iter().filter_map(|(_, c)| c.as_ref());
    let learned = std::iter::once((model, learned_resolutions(&base_card, None)))
        .chain(adapters.iter().zip(cards).map(|(dir, c)| (dir.as_path(), learned_resolutions(&base_card, Some(c)))));
    for (dir, learned) in learned {
        if !checked.contains(&learned) {
            warn_on_resolution_mismatch(&found, shards.len(), learned, dir);
            checked.push(learned);
        }
    }
    let mut out = Vec::new();
    for (adapter, card) in &strategies {
        let net = Network { base: &base, adapter };
        let outputs = predict_standardized(&net, &test.x, test.n_features, 4096, dev)?;
        let errors = card.as_ref().map_or_else(|| base_card.errors(), |c| c.errors());
        out.push(Scored {
            input: input.kind(),
            strategy: card.as_ref().map_or("zeroshot".to_string(), |c| c.strategy_label()),
            adapter_kind: adapter.kind().into(),
            n_train: card
                .as_ref()
                .and_then(|c| c.training.as_ref())
                .map_or(0, |t| if adapter.trainable().is_some() { t.n_train + t.n_val } else { 0 }),
            model_sha256: base_card.weights_sha256.clone(),
            adapter_sha256: card.as_ref().and_then(|c| c.weights_sha256.clone()).unwrap_or_default(),
            spectrum_id: test_rows.iter().map(|&r| set.spectrum_id[r].clone()).collect(),
            key: test_rows.iter().map(|&r| set.key[r]).collect(),
            snr: test_rows.iter().map(|&r| set.snr[r]).collect(),
            reference: test_rows.iter().map(|&r| set.labels[r]).collect(),
            est: outputs
                .iter()
                .zip(&test_rows)
                .map(|(o, &r)| to_physical(o, &base_card.label_scaling, &errors, set.snr[r]))
                .collect(),
        });
    }
    Ok(out)
}

/// `hybrid-ivar-regime` uses the embedding head only where the pixel head puts [Fe/H] at least
/// this many of its σ above −1. Chosen on the validation stars of the contrastive experiments
/// (experiments/README.md): 0 lets metal-poor stars near the boundary take the embedding head's
/// worse [Fe/H]; 1, 2 and 3 were within 1 % of each other.
const GATE_SIGMA: f64 = 2.0;

/// The hybrid estimators of a pixel and an embedding head with the same strategy, on the test
/// stars both scored: `hybrid-ivar` (inverse-variance mean of the two), `hybrid-regime` (the
/// embedding head, except where the pixel head says [Fe/H] < −1, where embeddings are weaker) and
/// `hybrid-ivar-regime` (pixels alone unless the pixel head puts the star above [Fe/H] = −1 by
/// [`GATE_SIGMA`] of its own σ, the inverse-variance mean there). The last exists because an
/// embedding head's σ is least trustworthy for metal-poor stars, the furthest from its training
/// set, so the inverse-variance mean over-weights it exactly there; and the margin because a
/// metal-poor star that the pixel head puts just above −1 is as poorly served by embeddings.
fn hybrids(pixels: &Scored, emb: &Scored) -> [Scored; 3] {
    let at: HashMap<&str, usize> = emb.spectrum_id.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let both: Vec<(usize, usize)> =
        pixels.spectrum_id.iter().enumerate().filter_map(|(i, s)| at.get(s.as_str()).map(|&j| (i, j))).collect();
    let make = |input: &'static str, combine: &dyn Fn(&Estimate, &Estimate) -> Estimate| Scored {
        input,
        strategy: pixels.strategy.clone(),
        adapter_kind: pixels.adapter_kind.clone(),
        n_train: pixels.n_train,
        model_sha256: format!("{}+{}", pixels.model_sha256, emb.model_sha256),
        adapter_sha256: format!("{}+{}", pixels.adapter_sha256, emb.adapter_sha256),
        spectrum_id: both.iter().map(|&(i, _)| pixels.spectrum_id[i].clone()).collect(),
        key: both.iter().map(|&(i, _)| pixels.key[i]).collect(),
        snr: both.iter().map(|&(i, _)| pixels.snr[i]).collect(),
        reference: both.iter().map(|&(i, _)| pixels.reference[i]).collect(),
        est: both.iter().map(|&(i, j)| combine(&pixels.est[i], &emb.est[j])).collect(),
    };
    let ivar = |a: &Estimate, b: &Estimate| {
        let mut e = *a;
        for p in 0..3 {
            let (wa, wb) = (a.error[p].powi(-2), b.error[p].powi(-2));
            e.value[p] = (wa * a.value[p] + wb * b.value[p]) / (wa + wb);
            e.error[p] = (wa + wb).sqrt().recip();
        }
        e
    };
    let regime = |a: &Estimate, b: &Estimate| if a.value[2] < METAL_POOR_FEH { *a } else { *b };
    let ivar_regime = |a: &Estimate, b: &Estimate| {
        if a.value[2] - GATE_SIGMA * a.error[2] < METAL_POOR_FEH { *a } else { ivar(a, b) }
    };
    [make("hybrid-ivar", &ivar), make("hybrid-regime", &regime), make("hybrid-ivar-regime", &ivar_regime)]
}

pub fn run_evaluate(opts: &EvaluateOptions) -> Result<EvaluationSummary> {
    let dev = opts.device.open()?;
    let labels = read_labels(&opts.labels, &opts.label_spec)?;
    let mut split = None;
    let mut scored = score_model(&opts.spectra, &opts.model, &opts.adapters, &labels, opts, &mut split, &dev)?;
    if let Some(e) = &opts.embedding {
        let emb = score_model(&e.spectra, &e.model, &e.adapters, &labels, opts, &mut split, &dev)?;
        let mut extra = Vec::new();
        for p in scored.iter().filter(|s| s.input == "pixels") {
            if let Some(q) = emb.iter().find(|q| q.strategy == p.strategy) {
                extra.extend(hybrids(p, q));
            }
        }
        scored.extend(emb);
        scored.extend(extra);
    }
    let split = split.unwrap_or(opts.split);
    std::fs::create_dir_all(&opts.out).map_err(|e| ModelError::io(&opts.out, e))?;
    let mut rows = Vec::new();
    let mut per_star = PerStar::default();
    for s in &scored {
        for k in 0..s.est.len() {
            per_star.push(s, k);
        }
    }
    // Bootstrap intervals are most of the work: one task per table row, in the table's order.
    let cells: Vec<(&Scored, Parameter, &'static str)> = scored
        .iter()
        .flat_map(|s| PARAMETERS.into_iter().flat_map(move |p| REGIMES.into_iter().map(move |r| (s, p, r))))
        .collect();
    use rayon::prelude::*;
    rows.par_extend(cells.par_iter().map(|&(s, p, regime)| {
        let idx: Vec<usize> = (0..s.est.len()).filter(|&k| regime_of(s.reference[k][2], regime)).collect();
        let delta: Vec<f64> = idx.iter().map(|&k| s.est[k].value[p.index()] - s.reference[k][p.index()]).collect();
        let sig: Vec<f64> = idx.iter().map(|&k| s.est[k].error[p.index()]).collect();
        MetricsRow {
            input: s.input.into(),
            strategy: s.strategy.clone(),
            adapter_kind: s.adapter_kind.clone(),
            n_train: s.n_train,
            parameter: p,
            regime,
            metrics: metrics::compute(&delta, &sig, p.outlier_threshold(), opts.n_boot, 11),
            model_sha256: s.model_sha256.clone(),
            adapter_sha256: s.adapter_sha256.clone(),
        }
    }));
    let n_test = scored.first().map_or(0, |s| s.est.len());
    let snr_coverage: Vec<(String, Vec<metrics::SnrCoverage>)> = scored
        .iter()
        .map(|s| {
            let stars: Vec<(f64, [bool; 3])> = (0..s.est.len())
                .map(|k| {
                    let within = |p: usize| (s.est[k].value[p] - s.reference[k][p]).abs() < s.est[k].error[p];
                    (s.snr[k] as f64, [within(0), within(1), within(2)])
                })
                .collect();
            (format!("{}/{}", s.input, s.strategy), metrics::coverage_by_snr(&stars))
        })
        .collect();
    use crate::artifacts::layout::{EVALUATION_MARKDOWN, EVALUATION_STARS, EVALUATION_TABLE};
    let parquet = opts.out.join(EVALUATION_TABLE);
    write_metrics(&parquet, &rows)?;
    per_star.write(&opts.out.join(EVALUATION_STARS))?;
    let markdown = opts.out.join(EVALUATION_MARKDOWN);
    let mut text = render_markdown(&rows, n_test, &split, &opts.labels);
    text += &render_snr_coverage(&snr_coverage);
    let encoder = opts.embedding.as_ref().map(|e| encoder_description(&e.spectra)).transpose()?;
    if let Some(e) = &encoder {
        let _ = write!(text, "\n## The embedding heads' encoder\n\n{e}\n");
    }
    std::fs::write(&markdown, text).map_err(|e| ModelError::io(&markdown, e))?;
    Ok(EvaluationSummary { n_test, rows, snr_coverage, encoder, markdown, parquet })
}

/// Where the embedding heads stand on real stars, said beside every encoder an evaluation names.
const REAL_STAR_EVIDENCE: &str = "On real stars the embedding heads measured so far trail the pixel head, which \
     catalogues publish as their default head (pipelines/README.md, \"Which head a catalogue publishes\")";

/// What the encoder of the embedding shards is, as `embed` recorded it (the first shard's
/// metadata; shards of an older starpipe say so), and where embedding heads stand on real stars.
fn encoder_description(embeddings: &[PathBuf]) -> Result<String> {
    use crate::artifacts::metadata::EmbeddingsMeta;
    let shards = crate::artifacts::discover::shard_paths(embeddings, crate::artifacts::ShardKind::Embeddings)?;
    let Some(first) = shards.first() else { return Ok(String::new()) };
    let kv = crate::io::read_key_value_metadata(first).map_err(|e| ModelError::bad(first, e))?;
    let encoder = match EmbeddingsMeta::from_key_values(&kv) {
        Some(m) if !m.encoder.is_empty() => m.encoder,
        Some(m) => format!("encoder {} (its description was not recorded by this older embed)", m.encoder_sha256),
        None => return Ok(String::new()),
    };
    Ok(format!("{encoder}. {REAL_STAR_EVIDENCE}"))
}

/// Coverage at 1σ per head and S/N bin as Markdown: errors checked at high S/N only can be too
/// small where most of a survey's stars are.
pub fn render_snr_coverage(coverage: &[(String, Vec<metrics::SnrCoverage>)]) -> String {
    let mut s = String::from(
        "## Coverage at 1σ per S/N bin\n\nThe fraction of test stars with `|Δ|<σ` (0.683 when the errors are right) \
         by median S/N per pixel.\n\n| head | S/N | N | Teff | log g | [Fe/H] |\n|---|---|---:|---:|---:|---:|\n",
    );
    for (head, bins) in coverage {
        for b in bins {
            let cell = |p: usize| if b.n == 0 { "–".to_string() } else { format!("{:.2}", b.within_1sigma[p]) };
            let _ = writeln!(
                s,
                "| {head} | {}–{} | {} | {} | {} | {} |",
                b.snr_min,
                b.snr_max,
                b.n,
                cell(0),
                cell(1),
                cell(2)
            );
        }
    }
    s
}

fn fmt_value(p: Parameter, v: f64) -> String {
    match p {
        Parameter::Teff => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

/// The metrics table as Markdown: one section per parameter, rows strategy × regime.
pub fn render_markdown(rows: &[MetricsRow], n_test: usize, split: &TestSplit, labels: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Evaluation\n\n{n_test} test spectra (test split: seed {}, fraction {}) against `{}`.\n\
         Δ = predicted − reference; [lo, hi] are bootstrap 68 % intervals; outliers: `|Δ|` > 300 K, 0.5 dex, 0.3 dex;\n\
         `|Δ|<σ` and `|Δ|<2σ` are the fractions inside the predicted 1σ and 2σ (0.683 and 0.954 when the errors\n\
         are right); σ(Δ/σ) is the robust width of the pull distribution (1 when they are right).\n",
        split.seed,
        split.test_fraction,
        labels.display()
    );
    for p in PARAMETERS {
        let _ = writeln!(s, "## {} ({})\n", p.name(), p.unit());
        let _ = writeln!(
            s,
            "| input | strategy | regime | N | bias | robust σ [68 %] | σ | MAE | outliers | \\|Δ\\|<σ | \\|Δ\\|<2σ | σ(Δ/σ) |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        for r in rows.iter().filter(|r| r.parameter == p) {
            let m = &r.metrics;
            let f = |v| fmt_value(p, v);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} [{}, {}] | {} | {} | {:.3} | {:.2} | {:.2} | {:.2} |",
                r.input,
                r.strategy,
                r.regime,
                m.n,
                f(m.bias),
                f(m.robust_sigma),
                f(m.robust_sigma_ci.lo),
                f(m.robust_sigma_ci.hi),
                f(m.sigma),
                f(m.mae),
                m.outlier_fraction,
                m.within_1sigma,
                m.within_2sigma,
                m.z_robust_sigma
            );
        }
        let _ = writeln!(s);
    }
    s
}

fn f64_col(v: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(v))
}

fn str_col<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

pub fn write_metrics(path: &Path, rows: &[MetricsRow]) -> Result<()> {
    let schema = crate::schema::evaluation_metrics().to_arrow(0);
    let m = |f: &dyn Fn(&Metrics) -> f64| f64_col(rows.iter().map(|r| f(&r.metrics)));
    let mut cols: Vec<ArrayRef> = vec![
        str_col(rows.iter().map(|r| r.input.as_str())),
        str_col(rows.iter().map(|r| r.strategy.as_str())),
        str_col(rows.iter().map(|r| r.adapter_kind.as_str())),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.n_train as i64))),
        str_col(rows.iter().map(|r| r.parameter.name())),
        str_col(rows.iter().map(|r| r.parameter.unit())),
        str_col(rows.iter().map(|r| r.regime)),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.metrics.n as i64))),
    ];
    type Getter = fn(&Metrics) -> (f64, f64, f64);
    let with_ci: [Getter; 5] = [
        |m| (m.bias, m.bias_ci.lo, m.bias_ci.hi),
        |m| (m.sigma, m.sigma_ci.lo, m.sigma_ci.hi),
        |m| (m.robust_sigma, m.robust_sigma_ci.lo, m.robust_sigma_ci.hi),
        |m| (m.mae, m.mae_ci.lo, m.mae_ci.hi),
        |m| (m.outlier_fraction, m.outlier_fraction_ci.lo, m.outlier_fraction_ci.hi),
    ];
    for g in with_ci {
        cols.push(m(&|x| g(x).0));
        cols.push(m(&|x| g(x).1));
        cols.push(m(&|x| g(x).2));
    }
    cols.push(m(&|x| x.biweight_scale));
    cols.push(m(&|x| x.outlier_3sigma_fraction));
    cols.push(m(&|x| x.within_1sigma));
    cols.push(m(&|x| x.within_2sigma));
    cols.push(m(&|x| x.z_robust_sigma));
    cols.push(m(&|x| x.median_z));
    cols.push(str_col(rows.iter().map(|r| r.model_sha256.as_str())));
    cols.push(str_col(rows.iter().map(|r| r.adapter_sha256.as_str())));
    let batch = RecordBatch::try_new(schema, cols)
        .map_err(|e| ModelError::File(crate::io::FileError::Arrow { path: path.into(), source: e }))?;
    write_small_table(path, &batch).map_err(|e| ModelError::bad(path, e.to_string()))
}

/// Per-star test predictions, for plots.
#[derive(Default)]
struct PerStar {
    input: Vec<&'static str>,
    strategy: Vec<String>,
    spectrum_id: Vec<String>,
    source_id: Vec<i64>,
    snr: Vec<f32>,
    reference: Vec<[f64; 3]>,
    value: Vec<[f64; 3]>,
    error: Vec<[f64; 3]>,
}

impl PerStar {
    /// Test star `k` of a scored model.
    fn push(&mut self, s: &Scored, k: usize) {
        self.input.push(s.input);
        self.strategy.push(s.strategy.clone());
        self.spectrum_id.push(s.spectrum_id[k].clone());
        self.source_id.push(s.key[k]);
        self.snr.push(s.snr[k]);
        self.reference.push(s.reference[k]);
        self.value.push(s.est[k].value);
        self.error.push(s.est[k].error);
    }

    fn write(&self, path: &Path) -> Result<()> {
        let schema = crate::schema::evaluation_predictions().to_arrow(0);
        let mut cols: Vec<ArrayRef> = vec![
            str_col(self.input.iter().copied()),
            str_col(self.strategy.iter().map(String::as_str)),
            str_col(self.spectrum_id.iter().map(String::as_str)),
            Arc::new(Int64Array::from(self.source_id.clone())),
            Arc::new(Float32Array::from(self.snr.clone())),
        ];
        for p in 0..3 {
            cols.push(f64_col(self.reference.iter().map(|r| r[p])));
            cols.push(f64_col(self.value.iter().map(|r| r[p])));
            cols.push(f64_col(self.error.iter().map(|r| r[p])));
        }
        let batch = RecordBatch::try_new(schema, cols)
            .map_err(|e| ModelError::File(crate::io::FileError::Arrow { path: path.into(), source: e }))?;
        write_small_table(path, &batch).map_err(|e| ModelError::bad(path, e.to_string()))
    }
}
