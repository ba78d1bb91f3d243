//! `starpipe infer`: stream normalised-spectra shards through a model (and adapter) in large
//! batches and write one prediction shard per input shard.
//!
//! Memory is one read batch plus one network batch, whatever the number of spectra. A finished
//! prediction shard records which input shard, model and adapter made it; a re-run skips shards
//! whose record matches and redoes the rest (files are written under a temporary name, then
//! renamed, so a killed run leaves no half-written shard).

use super::card::{AdapterCard, ErrorModel, InputSpec, ModelCard, learned_resolutions};
use super::data::{RawPixels, SpectraBatch, for_each_input_batch};
use super::mlp::Mode;
use super::mlp::{Adapter, Mlp, Network};
use super::predict::{output_rows, to_physical};
use super::store::{load_adapter, load_model};
use super::{ModelError, Result};
use crate::artifacts::discover::shard_paths;
use crate::artifacts::metadata::PredictionsMeta;
use crate::artifacts::naming;
use crate::io::tmp_path;
use crate::nn::device::ComputeDevice;
use crate::nn::precision::Precision;
use crate::shards::per_shard::{input_record, run_per_shard};
use crate::trust::reconstruction::Reconstruction;
use crate::trust::resolution::{degraded_to_r, shard_resolutions, warn_on_resolution_mismatch};
use arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct InferOptions {
    pub spectra: Vec<PathBuf>,
    pub model: PathBuf,
    pub adapter: Option<PathBuf>,
    pub out: PathBuf,
    /// Spectra per read block and network call (1024 was fastest on a 2-core CPU: larger blocks
    /// cost more in page faults than they gain in matrix-multiply efficiency).
    pub batch_size: usize,
    /// This task's share of the input shards (job arrays).
    pub shard: crate::artifacts::ShardSpec,
    pub device: ComputeDevice,
    /// f32, or bf16 weights and activations (GPUs).
    pub precision: Precision,
}

/// How the input shards were accounted for.
pub type InferSummary = crate::shards::per_shard::ShardsSummary;

/// A model ready for inference: LoRA merged into the weights, everything else as trained.
pub struct Predictor {
    /// The network that predicts (LoRA merged in, or the fully fine-tuned weights).
    pub base: Mlp,
    pub adapter: Adapter,
    /// The pre-trained network, when `base` is not it: its hidden features give the OOD score.
    pub original: Option<Mlp>,
    pub card: ModelCard,
    pub adapter_card: Option<AdapterCard>,
    /// The adapter's error model when there is an adapter, else the model's.
    pub errors: ErrorModel,
    /// The arithmetic the networks run in (weights converted once at load).
    pub precision: Precision,
}

impl Predictor {
    pub fn load(model: &Path, adapter: Option<&Path>, dev: &Device) -> Result<Self> {
        let (base, card) = load_model(model, dev)?;
        let (base, adapter, original, adapter_card) = match adapter {
            None => (base, Adapter::ZeroShot, None, None),
            Some(dir) => {
                let (a, c) = load_adapter(dir, &base, &card, dev)?;
                match a {
                    Adapter::Lora(l) => (l.merged_into(&base)?, Adapter::ZeroShot, Some(base), Some(c)),
                    Adapter::Full(m) => (m, Adapter::ZeroShot, Some(base), Some(c)),
                    other => (base, other, None, Some(c)),
                }
            }
        };
        let errors = adapter_card.as_ref().map_or_else(|| card.errors(), |c| c.errors());
        Ok(Self { base, adapter, original, card, adapter_card, errors, precision: Precision::F32 })
    }

    /// The same predictor computing in `precision`: weights converted once here, each input block
    /// on the device, outputs back to f32 before they leave the network.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        if precision != self.precision {
            let dtype = precision.dtype();
            self.base = self.base.to_dtype(dtype)?;
            self.adapter = self.adapter.to_dtype(dtype)?;
            self.original = self.original.as_ref().map(|m| m.to_dtype(dtype)).transpose()?;
            self.precision = precision;
        }
        Ok(self)
    }

    /// Standardised outputs and OOD scores (NaN without an OOD model) of a feature matrix it
    /// takes over. One pass when the predicting network is the pre-trained one (zero-shot,
    /// residual head), a second through the pre-trained network otherwise.
    pub fn predict(&self, x: Vec<f32>, n_features: usize, dev: &Device) -> Result<(Vec<[f32; 6]>, Vec<f64>)> {
        let rows = x.len() / n_features.max(1);
        let t = Tensor::from_vec(x, (rows, n_features), dev)?.to_dtype(self.precision.dtype())?;
        let (y, h) = match (&self.original, &self.adapter) {
            (Some(original), _) => (
                self.network().forward(&t, &mut Mode::Eval)?,
                original.forward_with_hidden(&t, true, None, &mut Mode::Eval)?.1,
            ),
            (None, Adapter::ResHead(head)) => {
                let (y, h) = self.base.forward_with_hidden(&t, true, None, &mut Mode::Eval)?;
                ((y + head.forward(&h)?)?, h)
            }
            (None, _) => self.base.forward_with_hidden(&t, true, None, &mut Mode::Eval)?,
        };
        let raw = output_rows(&y.to_dtype(DType::F32)?)?;
        let ood = match &self.card.ood {
            Some(m) => {
                let h = h.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                h.chunks_exact(m.dim).map(|r| m.score(r)).collect()
            }
            None => vec![f64::NAN; rows],
        };
        Ok((raw, ood))
    }

    /// The error model `calibrate` fitted that is in force: the adapter's, else the model's.
    fn fitted(&self) -> Option<&super::card::FittedErrorModel> {
        self.adapter_card.as_ref().and_then(|c| c.error_model.as_ref()).or(self.card.error_model.as_ref())
    }

    /// The reconstruction χ² above which the catalogue flags OOD (set by `calibrate` only).
    pub fn chi2_threshold(&self) -> Option<f64> {
        self.fitted().and_then(|m| m.chi2_threshold)
    }

    /// The OOD score above which the catalogue flags OOD: the one real stars set (`calibrate`),
    /// else the training set's 99.5th percentile.
    pub fn ood_threshold(&self) -> Option<f64> {
        self.fitted().and_then(|m| m.ood_threshold).or(self.card.ood.as_ref().map(|o| o.threshold_995))
    }

    pub fn network(&self) -> Network<'_> {
        Network { base: &self.base, adapter: &self.adapter }
    }

    pub fn adapter_kind(&self) -> &str {
        self.adapter_card.as_ref().map_or("zeroshot", |c| c.kind.as_str())
    }

    pub fn adapter_sha256(&self) -> &str {
        self.adapter_card.as_ref().and_then(|c| c.weights_sha256.as_deref()).unwrap_or("")
    }

    /// The error model `starpipe calibrate` fitted for the errors this predictor reports (the
    /// adapter's when there is one), if any.
    pub fn calibration(&self) -> Option<&super::card::FittedErrorModel> {
        match &self.adapter_card {
            Some(c) => c.error_model.as_ref(),
            None => self.card.error_model.as_ref(),
        }
    }

    /// The calibration record the prediction shards carry: what the error model was fitted on and
    /// how it covers; empty when there is none.
    fn calibration_record(&self) -> String {
        self.calibration().map_or(String::new(), |m| {
            serde_json::json!({
                "label_table": m.source.label_table,
                "n_used": m.n_used,
                "coverage_1sigma": m.coverage_1sigma,
            })
            .to_string()
        })
    }
}

fn provenance(shard: &Path, p: &Predictor) -> Result<Vec<(String, String)>> {
    Ok(PredictionsMeta {
        version: crate::VERSION.into(),
        input: input_record(shard)?,
        model_sha256: p.card.weights_sha256.clone(),
        adapter_sha256: p.adapter_sha256().into(),
        label_range_json: serde_json::to_string(&p.card.label_range).unwrap_or_default(),
        ood_threshold_995: p.card.ood.as_ref().map(|o| o.threshold_995),
        ood_threshold: p.ood_threshold(),
        chi2_threshold: p.chi2_threshold(),
        model_input: p.card.input.kind().into(),
        // Part of what a shard was predicted with: a recalibrated card shares the weights' hash.
        error_model_json: serde_json::to_string(&p.errors).unwrap_or_default(),
        precision: p.precision.as_str().into(),
        calibration: p.calibration_record(),
    }
    .to_key_values())
}

pub fn run_infer(opts: &InferOptions, progress: &indicatif::ProgressBar) -> Result<InferSummary> {
    let dev = opts.device.open()?;
    opts.precision.warn_if_slow_on(&dev);
    let predictor = Predictor::load(&opts.model, opts.adapter.as_deref(), &dev)?.with_precision(opts.precision)?;
    if predictor.calibration().is_none() {
        tracing::warn!(
            model = %opts.model.display(),
            adapter = %opts.adapter.as_ref().map_or(String::new(), |a| a.display().to_string()),
            "this head has no error model fitted on held-out labelled stars: its errors are the network's, scaled on \
             its own validation stars, and their coverage is unverified (the catalogue flags its rows UNCALIBRATED); \
             run `starpipe calibrate` on labelled stars it never saw"
        );
    }
    let input = predictor.card.input.clone();
    let shards = opts.shard.select(&shard_paths(&opts.spectra, input.shard_kind())?);
    let learned = learned_resolutions(&predictor.card, predictor.adapter_card.as_ref());
    let model = opts.adapter.as_deref().unwrap_or(&opts.model);
    warn_on_resolution_mismatch(&shard_resolutions(&shards), shards.len(), learned, model);
    run_per_shard(
        &shards,
        &opts.out,
        naming::predictions_of,
        |shard| provenance(shard, &predictor),
        |shard, out, meta| predict_shard(shard, out, &input, &predictor, meta, opts.batch_size, &dev),
        progress,
    )
}

fn predict_shard(
    shard: &Path,
    out: &Path,
    input: &InputSpec,
    p: &Predictor,
    meta: Vec<(String, String)>,
    batch_size: usize,
    dev: &Device,
) -> Result<usize> {
    let schema = crate::schema::predictions().to_arrow(0);
    let tmp = tmp_path(out);
    let pq = |e| ModelError::File(crate::io::FileError::Parquet { path: tmp.clone(), source: e });
    let mut writer = crate::shards::per_shard::shard_writer(&tmp, schema.clone(), meta, 65_536)?;
    let reconstruction = match input {
        InputSpec::Pixels { window } => Some(Reconstruction::new(window, degraded_to_r(shard)?)),
        InputSpec::Embeddings { .. } => None,
    };
    let model_sha = p.card.weights_sha256.as_str();
    let (kind, adapter_sha) = (p.adapter_kind(), p.adapter_sha256());
    let mut rows = 0;
    // A reader thread decodes the next blocks while this one runs the network and writes: reading
    // alone is single-threaded, and without the overlap half of the cores sit idle.
    let (tx, rx) = std::sync::mpsc::sync_channel::<SpectraBatch>(2);
    std::thread::scope(|scope| -> Result<()> {
        // A failed send means the consumer stopped on an error: stop reading too.
        let stopped = || ModelError::Invalid("prediction stopped".into());
        let reader = scope.spawn(move || {
            for_each_input_batch(shard, input, batch_size, RawPixels::Keep, |b| tx.send(b).map_err(|_| stopped()))
        });
        for b in rx {
            // The read block is one network batch: its feature matrix becomes the input tensor as is.
            let n = b.len();
            let (raw, ood) = p.predict(b.features, b.n_features, dev)?;
            let est: Vec<_> =
                raw.iter().zip(&b.snr).map(|(o, &snr)| to_physical(o, &p.card.label_scaling, &p.errors, snr)).collect();
            let chi2: Vec<f64> = match &reconstruction {
                Some(r) => {
                    use rayon::prelude::*;
                    let nf = b.n_features;
                    (0..n)
                        .into_par_iter()
                        .map(|i| {
                            let w = i * nf..(i + 1) * nf;
                            r.chi2(est[i].value, &b.survey[i], &b.flux[w.clone()], &b.ivar[w])
                        })
                        .collect()
                }
                None => vec![f64::NAN; n],
            };
            let mut cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(b.spectrum_id)),
                Arc::new(StringArray::from(b.survey)),
                Arc::new(Int64Array::from(b.source_id)),
            ];
            for k in 0..3 {
                cols.push(Arc::new(Float32Array::from_iter_values(est.iter().map(|e| e.value[k] as f32))));
                cols.push(Arc::new(Float32Array::from_iter_values(est.iter().map(|e| e.error[k] as f32))));
            }
            cols.push(Arc::new(Float32Array::from_iter(ood.iter().map(|&d| d.is_finite().then_some(d as f32)))));
            cols.push(Arc::new(Float32Array::from_iter(chi2.iter().map(|&c| c.is_finite().then_some(c as f32)))));
            for s in [model_sha, kind, adapter_sha] {
                cols.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, n))));
            }
            let batch = RecordBatch::try_new(schema.clone(), cols)
                .map_err(|e| ModelError::File(crate::io::FileError::Arrow { path: out.to_path_buf(), source: e }))?;
            writer
                .write(&batch)
                .map_err(|e| ModelError::File(crate::io::FileError::Parquet { path: tmp.clone(), source: e }))?;
            rows += n;
        }
        reader.join().expect("shard reader thread panicked")
    })?;
    writer.close().map_err(pq)?;
    crate::io::commit(out)?;
    Ok(rows)
}
