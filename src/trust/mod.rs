//! What a prediction is checked against, below the models that make them: error statistics
//! (`metrics`: robust σ, coverage, coverage per S/N bin, bootstrap intervals), the out-of-distribution
//! score (`ood`), the reconstruction check (`reconstruction`: χ² of the emulator at the predicted
//! labels), and the spectral resolution a shard was ingested at (`resolution`). Nothing here knows
//! a network: `model` uses these, `validate` scores with them.

pub mod metrics;
pub mod ood;
pub mod reconstruction;
pub mod resolution;

/// Reading what a check needs fails only as files do.
pub type Result<T> = std::result::Result<T, crate::io::FileError>;
