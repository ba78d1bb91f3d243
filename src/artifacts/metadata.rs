//! Key-value metadata of each file kind: the keys in one place, and typed records for the kinds
//! one stage writes and another reads. A writer builds the record and calls `to_key_values`; a
//! reader calls `from_key_values`, so neither spells a key.

use std::path::Path;

/// The starpipe version that wrote a file (every kind).
pub const VERSION: &str = "starpipe.version";

/// Normalised-spectra shards (`ingest`).
pub mod spectra {
    /// The output grid, JSON (`grid::LogGrid`): enough to rebuild each pixel's wavelength.
    pub const GRID: &str = "starpipe.grid";
    /// The preprocessing settings, JSON (`preprocess::PreprocessConfig`).
    pub const PREPROCESS: &str = "starpipe.preprocess";
    /// Fingerprint of the task's inputs, settings, version and schema (resume check).
    pub const FINGERPRINT: &str = "starpipe.ingest.fingerprint";
    /// The contiguous range of the task's ordered inputs this shard covers.
    pub const INPUTS: &str = "starpipe.ingest.inputs";
    pub const INPUTS_FINGERPRINT: &str = "starpipe.ingest.inputs_fingerprint";
    /// Written/skipped/failed counts of the shard's inputs, JSON.
    pub const COUNTS: &str = "starpipe.ingest.counts";
}

/// Embedding shards (`embed`).
pub mod embeddings {
    /// The spectra shard embedded, as [`super::input_record`] writes it.
    pub const INPUT: &str = "starpipe.embed.input";
    pub const ENCODER_SHA256: &str = "starpipe.embed.encoder_sha256";
    /// Embedding width.
    pub const DIM: &str = "starpipe.embed.dim";
    /// The arithmetic of the encoder: `f32` or `bf16`.
    pub const PRECISION: &str = "starpipe.embed.precision";
    /// What the encoder is, in words (size, data, epochs, objective) and whether it is the
    /// recommended one: what `evaluate` prints beside embedding heads.
    pub const ENCODER: &str = "starpipe.embed.encoder";
}

/// Prediction shards (`infer`).
pub mod predictions {
    /// The spectra or embedding shard predicted from, as [`super::input_record`] writes it.
    pub const INPUT: &str = "starpipe.infer.input";
    pub const MODEL_SHA256: &str = "starpipe.infer.model_sha256";
    pub const ADAPTER_SHA256: &str = "starpipe.infer.adapter_sha256";
    pub const LABEL_RANGE: &str = "starpipe.infer.label_range";
    pub const OOD_THRESHOLD_995: &str = "starpipe.infer.ood_threshold_995";
    pub const OOD_THRESHOLD: &str = "starpipe.infer.ood_threshold";
    pub const CHI2_THRESHOLD: &str = "starpipe.infer.chi2_threshold";
    pub const MODEL_INPUT: &str = "starpipe.infer.model_input";
    pub const ERROR_MODEL: &str = "starpipe.infer.error_model";
    /// The arithmetic of the network: `f32` or `bf16`.
    pub const PRECISION: &str = "starpipe.infer.precision";
    /// What the head's error model was fitted on by `starpipe calibrate` (JSON: label table,
    /// stars used, coverage); empty when it has none, i.e. its errors are uncalibrated.
    pub const CALIBRATION: &str = "starpipe.infer.calibration";
}

/// The value of `key`, if the file has it.
pub fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// How a per-shard output records its input shard: file name and size (`NAME (N bytes)`). A
/// re-run compares it to decide whether an output is current.
pub fn input_record(shard: &Path) -> std::io::Result<String> {
    let size = std::fs::metadata(shard)?.len();
    Ok(format!("{} ({size} bytes)", shard.file_name().and_then(|n| n.to_str()).unwrap_or("")))
}

/// The size part of an [`input_record`]: a shard renamed together with its outputs is still the
/// same data.
pub fn recorded_size(record: &str) -> Option<&str> {
    record.rsplit_once(" (").map(|(_, s)| s)
}

/// What a prediction shard records about the model that made it; the catalogue reads it back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictionsMeta {
    pub version: String,
    pub input: String,
    pub model_sha256: String,
    pub adapter_sha256: String,
    /// The pre-training labels' percentiles, JSON (`model::card::LabelRange`).
    pub label_range_json: String,
    pub ood_threshold_995: Option<f64>,
    /// The OOD threshold in use: fitted on real stars, else the training 99.5 % one.
    pub ood_threshold: Option<f64>,
    pub chi2_threshold: Option<f64>,
    /// `pixels` or `embeddings`.
    pub model_input: String,
    /// The error model the errors were computed with, JSON (`model::card::ErrorModel`).
    pub error_model_json: String,
    /// `f32` or `bf16` (empty: a shard from before precision was recorded, f32).
    pub precision: String,
    /// The `starpipe calibrate` record of the head's error model; empty when uncalibrated (and
    /// in shards from before it was recorded).
    pub calibration: String,
}

fn number(v: Option<f64>) -> String {
    v.map_or(String::new(), |t| t.to_string())
}

impl PredictionsMeta {
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        use predictions::*;
        [
            (VERSION, self.version.clone()),
            (INPUT, self.input.clone()),
            (MODEL_SHA256, self.model_sha256.clone()),
            (ADAPTER_SHA256, self.adapter_sha256.clone()),
            (LABEL_RANGE, self.label_range_json.clone()),
            (OOD_THRESHOLD_995, number(self.ood_threshold_995)),
            (OOD_THRESHOLD, number(self.ood_threshold)),
            (CHI2_THRESHOLD, number(self.chi2_threshold)),
            (MODEL_INPUT, self.model_input.clone()),
            (ERROR_MODEL, self.error_model_json.clone()),
            (PRECISION, self.precision.clone()),
            (CALIBRATION, self.calibration.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Missing keys (shards of an older starpipe) read as empty or `None`.
    pub fn from_key_values(kv: &[(String, String)]) -> Self {
        use predictions::*;
        let s = |k: &str| get(kv, k).unwrap_or_default().to_string();
        let f = |k: &str| get(kv, k).and_then(|v| v.parse().ok());
        Self {
            version: s(VERSION),
            input: s(INPUT),
            model_sha256: s(MODEL_SHA256),
            adapter_sha256: s(ADAPTER_SHA256),
            label_range_json: s(LABEL_RANGE),
            ood_threshold_995: f(OOD_THRESHOLD_995),
            ood_threshold: f(OOD_THRESHOLD),
            chi2_threshold: f(CHI2_THRESHOLD),
            model_input: s(MODEL_INPUT),
            error_model_json: s(ERROR_MODEL),
            precision: s(PRECISION),
            calibration: s(CALIBRATION),
        }
    }

    /// Whether the head's errors come from an error model fitted on held-out labelled stars.
    pub fn is_calibrated(&self) -> bool {
        !self.calibration.is_empty()
    }

    pub fn made_from_embeddings(&self) -> bool {
        self.model_input == "embeddings"
    }
}

/// What an embedding shard records about the encoder that made it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingsMeta {
    pub version: String,
    pub input: String,
    pub encoder_sha256: String,
    pub dim: usize,
    /// `f32` or `bf16` (empty: from before precision was recorded, f32).
    pub precision: String,
    /// The encoder in words (empty: from before it was recorded).
    pub encoder: String,
}

impl EmbeddingsMeta {
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        use embeddings::*;
        vec![
            (VERSION.to_string(), self.version.clone()),
            (INPUT.to_string(), self.input.clone()),
            (ENCODER_SHA256.to_string(), self.encoder_sha256.clone()),
            (DIM.to_string(), self.dim.to_string()),
            (PRECISION.to_string(), self.precision.clone()),
            (ENCODER.to_string(), self.encoder.clone()),
        ]
    }

    /// `None` when the file is not an embedding shard (no encoder hash or width).
    pub fn from_key_values(kv: &[(String, String)]) -> Option<Self> {
        use embeddings::*;
        Some(Self {
            version: get(kv, VERSION).unwrap_or_default().to_string(),
            input: get(kv, INPUT).unwrap_or_default().to_string(),
            encoder_sha256: get(kv, ENCODER_SHA256)?.to_string(),
            dim: get(kv, DIM)?.parse().ok()?,
            precision: get(kv, PRECISION).unwrap_or_default().to_string(),
            encoder: get(kv, ENCODER).unwrap_or_default().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_metadata_round_trips_and_keeps_the_key_order() {
        let p = PredictionsMeta {
            version: "1".into(),
            input: "spectra-a.parquet (10 bytes)".into(),
            ood_threshold: Some(2.5),
            model_input: "pixels".into(),
            ..Default::default()
        };
        let kv = p.to_key_values();
        assert_eq!(kv[0].0, VERSION);
        assert_eq!(get(&kv, predictions::OOD_THRESHOLD), Some("2.5"));
        assert_eq!(get(&kv, predictions::CHI2_THRESHOLD), Some(""));
        assert_eq!(PredictionsMeta::from_key_values(&kv), p);
        let e = EmbeddingsMeta {
            version: "1".into(),
            input: "x".into(),
            encoder_sha256: "ab".into(),
            dim: 64,
            precision: "bf16".into(),
            encoder: "width 64".into(),
        };
        assert_eq!(EmbeddingsMeta::from_key_values(&e.to_key_values()), Some(e));
        assert_eq!(EmbeddingsMeta::from_key_values(&kv), None);
        assert_eq!(recorded_size("spectra-a.parquet (10 bytes)"), Some("10 bytes)"));
    }
}
