//! Models scored against labels and against themselves, above the models: `evaluate` (held-out
//! stars of the target survey, every head, hybrids, coverage per S/N bin), `error_model`
//! (`starpipe calibrate`: the error model and domain thresholds fitted on labelled stars the
//! model never saw, written into a copy of the model or adapter) and `repeats` (label-free checks
//! from repeat and cross-survey pairs). They use `model` and `trust`; nothing below uses them.

pub mod error_model;
pub mod evaluate;
pub mod repeats;
