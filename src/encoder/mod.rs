//! A SpecCLIP-style transformer encoder of normalised spectra (SpecCLIP, as arXiv 2602.15021 uses it), trained here by
//! masked-token reconstruction since SpecCLIP's weights cannot be downloaded: `tokens` (the
//! token layout), `network` (the encoder), `train` (`starpipe train-encoder`), `embed`
//! (`starpipe embed`, embedding shards).

pub mod embed;
pub mod network;
pub mod tokens;
pub mod train;
