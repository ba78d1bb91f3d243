//! The encoder directory on disk:
//!
//! ```text
//! ENCODER/ encoder.safetensors  encoder-card.json
//! ```

use super::card::{ENCODER_CARD, ENCODER_FORMAT, ENCODER_WEIGHTS, EncoderCard};
use super::network::Encoder;
use super::{EncoderError, Result};
use crate::nn::params::Params;
use crate::nn::weights::{load_tensors, read_json, read_tensors, save_params, write_json};
use candle_core::{Device, Tensor};
use std::path::Path;

/// Weights of a file, in `params`' order (for `restore`), on `dev`.
pub(super) fn load_weights(path: &Path, params: &Params, dev: &Device) -> Result<Vec<Tensor>> {
    let map = read_tensors(path, dev)?;
    params
        .keys()
        .map(|k| map.get(k).cloned().ok_or_else(|| EncoderError::bad(path, format!("no tensor '{k}'"))))
        .collect()
}

pub fn save_encoder(dir: &Path, enc: &Encoder, card: &mut EncoderCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| EncoderError::io(dir, e))?;
    card.weights_sha256 = save_params(&dir.join(ENCODER_WEIGHTS), &enc.params)?;
    Ok(write_json(&dir.join(ENCODER_CARD), card)?)
}

pub fn load_encoder(dir: &Path, dev: &Device) -> Result<(Encoder, EncoderCard)> {
    let card_path = dir.join(ENCODER_CARD);
    let card: EncoderCard = read_json(&card_path)?;
    if card.format != ENCODER_FORMAT {
        return Err(EncoderError::bad(&card_path, format!("format '{}' is not {ENCODER_FORMAT}", card.format)));
    }
    let path = dir.join(ENCODER_WEIGHTS);
    let tensors = load_tensors(&path, &card.weights_sha256, dev)?;
    let enc = Encoder::from_tensors(card.architecture.clone(), tensors).map_err(|e| EncoderError::bad(&path, e))?;
    Ok((enc, card))
}
