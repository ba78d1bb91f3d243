//! The files inside the directories stages write, named once: model, adapter and encoder
//! directories (with the encoder's resumable checkpoint), and the evaluation and repeats outputs.
//! Writers and readers (`report` reads the evaluation) take the names from here.

/// A model directory (`train`, `calibrate`): weights and card.
pub const MODEL_WEIGHTS: &str = "model.safetensors";
pub const MODEL_CARD: &str = "model-card.json";
/// An adapter directory (`finetune`, `calibrate --adapter`).
pub const ADAPTER_WEIGHTS: &str = "adapter.safetensors";
pub const ADAPTER_CARD: &str = "adapter-card.json";
/// An encoder directory (`train-encoder`), and the checkpoint a killed run resumes from.
pub const ENCODER_WEIGHTS: &str = "encoder.safetensors";
pub const ENCODER_CARD: &str = "encoder-card.json";
pub const ENCODER_CHECKPOINT: &str = "checkpoint.safetensors";
pub const ENCODER_CHECKPOINT_BEST: &str = "checkpoint-best.safetensors";
pub const ENCODER_CHECKPOINT_STATE: &str = "checkpoint.json";
pub const ENCODER_CHECKPOINT_OPTIMIZER: &str = "checkpoint-optimizer.safetensors";
/// An `evaluate` directory: the metrics table, the per-star rows and the Markdown summary.
pub const EVALUATION_TABLE: &str = "evaluation.parquet";
pub const EVALUATION_STARS: &str = "evaluation-predictions.parquet";
pub const EVALUATION_MARKDOWN: &str = "evaluation.md";
/// A `repeats` directory.
pub const REPEATS_TABLE: &str = "repeats.parquet";
pub const REPEATS_MARKDOWN: &str = "repeats.md";
