//! Labelled sets for the MLPs: shards (read through `crate::shards::read`, re-exported here for
//! the model stages) joined to reference labels and cut by the selection.

use super::Result;
pub use crate::shards::read::{
    READ_BATCH_ROWS, RawPixels, SpectraBatch, embedding_shard_info, for_each_batch, pixel_features, shard_grid,
    uncovered, window_offset,
};
use std::path::{Path, PathBuf};

/// Streams a shard of the model's input kind as feature blocks: pixels of the window for spectra
/// shards (with their raw pixels when `raw` says so), standardised embeddings for embedding shards.
pub fn for_each_input_batch(
    path: &Path,
    input: &super::card::InputSpec,
    batch_rows: usize,
    raw: RawPixels,
    f: impl FnMut(SpectraBatch) -> Result<()>,
) -> Result<()> {
    match input {
        super::card::InputSpec::Pixels { window } => for_each_batch(path, window, batch_rows, raw, f),
        super::card::InputSpec::Embeddings { encoder_sha256, dim, mean, std } => {
            crate::shards::read::for_each_embedding_batch(path, encoder_sha256, *dim, mean, std, batch_rows, f)
        }
    }
}

/// Spectra that have reference labels and pass the selection cuts, with their inputs.
#[derive(Debug, Clone, Default)]
pub struct LabelledSet {
    pub spectrum_id: Vec<String>,
    pub key: Vec<i64>,
    pub snr: Vec<f32>,
    pub labels: Vec<[f64; 3]>,
    pub x: Vec<f32>,
    pub n_features: usize,
    pub counts: LabelledCounts,
}

/// How the spectra read were accounted for.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelledCounts {
    pub spectra_read: usize,
    pub without_label: usize,
    pub below_min_snr: usize,
    pub label_error_too_large: usize,
    pub used: usize,
}

impl LabelledSet {
    pub fn len(&self) -> usize {
        self.key.len()
    }
    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }

    /// The given rows as a training set with labels standardised by `scaling`.
    pub fn dataset(&self, rows: &[usize], scaling: &super::card::LabelScaling) -> super::fit::Dataset {
        let n = self.n_features;
        let mut x = Vec::with_capacity(rows.len() * n);
        let mut y = Vec::with_capacity(rows.len() * 3);
        for &r in rows {
            x.extend_from_slice(&self.x[r * n..(r + 1) * n]);
            y.extend(scaling.standardize(&self.labels[r]));
        }
        super::fit::Dataset { x, y, n_features: n }
    }

    /// SHA-256 over ids, labels and inputs of the given rows, in order: the data identity recorded
    /// in model cards.
    pub fn hash_rows(&self, rows: &[usize]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let n = self.n_features;
        for &r in rows {
            h.update(self.spectrum_id[r].as_bytes());
            for v in self.labels[r] {
                h.update(v.to_le_bytes());
            }
            for v in &self.x[r * n..(r + 1) * n] {
                h.update(v.to_le_bytes());
            }
        }
        format!("{:x}", h.finalize())
    }
}

/// Reads every shard, keeping spectra whose key is in the label table and that pass the cuts.
pub fn load_labelled(
    shards: &[PathBuf],
    input: &super::card::InputSpec,
    labels: &crate::labels::LabelTable,
    cuts: &super::card::SelectionCuts,
) -> Result<LabelledSet> {
    let mut set = LabelledSet { n_features: input.n_features(), ..Default::default() };
    for shard in shards {
        for_each_input_batch(shard, input, READ_BATCH_ROWS, RawPixels::Drop, |b| {
            for i in 0..b.len() {
                set.counts.spectra_read += 1;
                let Some(l) = labels.get(b.source_id[i]) else {
                    set.counts.without_label += 1;
                    continue;
                };
                let snr = b.snr[i] as f64;
                if cuts.min_snr > 0.0 && (snr.is_nan() || snr < cuts.min_snr) {
                    set.counts.below_min_snr += 1;
                    continue;
                }
                if (0..3).any(|p| cuts.max_label_error[p].is_some_and(|max| l.errors[p] > max)) {
                    set.counts.label_error_too_large += 1;
                    continue;
                }
                set.spectrum_id.push(b.spectrum_id[i].clone());
                set.key.push(b.source_id[i]);
                set.snr.push(b.snr[i]);
                set.labels.push(l.values);
                set.x.extend_from_slice(b.row(i));
            }
            Ok(())
        })?;
    }
    set.counts.used = set.len();
    Ok(set)
}
