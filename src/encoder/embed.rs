//! `starpipe embed`: stream normalised-spectra shards through the encoder in batches and write one
//! embedding shard per input shard (`embeddings-X` in the row order of `spectra-X`).
//!
//! Finished shards record their input shard and encoder hash; a re-run keeps those and redoes the
//! rest. Files are written under a temporary name and renamed.

use super::network::Encoder;
use super::tokens::TokenLayout;
use super::train::{load_encoder, tokens_tensor};
use super::{EncoderError, Result};
use crate::artifacts::ShardKind;
use crate::artifacts::discover::shard_paths;
use crate::artifacts::metadata::EmbeddingsMeta;
use crate::artifacts::naming;
use crate::io::tmp_path;
use crate::nn::device::ComputeDevice;
use crate::nn::precision::Precision;
use crate::shards::per_shard::{input_record, run_per_shard};
use crate::shards::read::{RawPixels, for_each_batch};
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct EmbedOptions {
    pub spectra: Vec<PathBuf>,
    pub encoder: PathBuf,
    pub out: PathBuf,
    pub batch_size: usize,
    /// This task's share of the input shards (job arrays).
    pub shard: crate::artifacts::ShardSpec,
    pub device: ComputeDevice,
    /// f32, or bf16 weights and activations (GPUs); embeddings are written as f32 either way.
    pub precision: Precision,
}

/// How the input shards were accounted for.
pub type EmbedSummary = crate::shards::per_shard::ShardsSummary;

/// Embeddings of a block of features (rows × npix), row-major rows × D.
pub fn embed_features(enc: &Encoder, layout: &TokenLayout, features: &[f32], dev: &Device) -> Result<Vec<f32>> {
    let rows: Vec<usize> = (0..features.len() / layout.npix.max(1)).collect();
    let t = tokens_tensor(layout, features, &rows, dev)?;
    Ok(enc.embed(&t)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
}

pub fn run_embed(opts: &EmbedOptions, progress: &indicatif::ProgressBar) -> Result<EmbedSummary> {
    let dev = opts.device.open()?;
    opts.precision.warn_if_slow_on(&dev);
    let (enc, card) = load_encoder(&opts.encoder, &dev)?;
    let enc = enc.to_dtype(opts.precision.dtype())?;
    let shards = opts.shard.select(&shard_paths(&opts.spectra, ShardKind::Spectra)?);
    let provenance = |shard: &Path| -> Result<Vec<(String, String)>> {
        Ok(EmbeddingsMeta {
            version: crate::VERSION.to_string(),
            input: input_record(shard)?,
            encoder_sha256: card.weights_sha256.clone(),
            dim: enc.config.d_model,
            precision: opts.precision.as_str().into(),
            encoder: card.describe(),
        }
        .to_key_values())
    };
    run_per_shard(
        &shards,
        &opts.out,
        naming::embeddings_of,
        provenance,
        |shard, out, meta| embed_shard(shard, out, &enc, &card, meta, opts.batch_size, &dev),
        progress,
    )
}

fn embed_shard(
    shard: &Path,
    out: &Path,
    enc: &Encoder,
    card: &super::train::EncoderCard,
    meta: Vec<(String, String)>,
    batch_size: usize,
    dev: &Device,
) -> Result<usize> {
    let d = enc.config.d_model;
    let schema = crate::schema::embeddings().to_arrow(d);
    let tmp = tmp_path(out);
    let pq = |e| EncoderError::File(crate::io::FileError::Parquet { path: tmp.clone(), source: e });
    let mut writer = crate::shards::per_shard::shard_writer(&tmp, schema.clone(), meta, 16_384)?;
    let mut rows = 0;
    for_each_batch::<EncoderError>(shard, &card.window, batch_size, RawPixels::Drop, |b| {
        let n = b.len();
        let e = embed_features(enc, &card.tokens, &b.features, dev)?;
        let list =
            FixedSizeListArray::new(crate::schema::list_item_field(), d as i32, Arc::new(Float32Array::from(e)), None);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(b.spectrum_id)),
            Arc::new(StringArray::from(b.survey)),
            Arc::new(Int64Array::from(b.source_id)),
            Arc::new(Float32Array::from(b.snr)),
            Arc::new(list),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(card.weights_sha256.as_str(), n))),
        ];
        let batch = RecordBatch::try_new(schema.clone(), cols)
            .map_err(|e| EncoderError::File(crate::io::FileError::Arrow { path: out.to_path_buf(), source: e }))?;
        writer
            .write(&batch)
            .map_err(|e| EncoderError::File(crate::io::FileError::Parquet { path: tmp.clone(), source: e }))?;
        rows += n;
        Ok(())
    })?;
    writer.close().map_err(pq)?;
    crate::io::commit(out)?;
    Ok(rows)
}
