//! One integration-test binary (each test binary links polars; one keeps CI builds short).

mod architecture;
mod bad_artifacts;
mod catalog;
mod cli;
mod common;
mod continuum_bias;
mod embeddings;
mod fuzz_corpus;
mod gpu_check_script;
mod ingest_bad_inputs;
mod ingest_desi;
mod ingest_lamost;
mod ingest_resume;
mod mock_desi;
mod mock_lamost;
mod mock_library;
mod models;
mod pipeline;
mod python_readers;
mod recommended;
mod shards_readable;
mod slurm;
mod user_tables;
