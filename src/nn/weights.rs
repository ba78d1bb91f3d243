//! Weights and cards on disk: safetensors written atomically and identified by their SHA-256,
//! read back only when the hash matches the card; JSON cards.

use super::params::Params;
use super::{NnError, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(crate::io::write_bytes_atomically(path, bytes)?)
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| NnError::File(crate::io::FileError::Json { path: path.into(), source: e }))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Copies a file byte for byte, under a temporary name first.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    write_atomic(to, &std::fs::read(from).map_err(|e| NnError::io(from, e))?)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| NnError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| NnError::File(crate::io::FileError::Json { path: path.into(), source: e }))
}

/// Writes the weights (temporary name, then rename) and returns their SHA-256.
pub fn save_params(path: &Path, params: &Params) -> Result<String> {
    let tensors: HashMap<String, Tensor> =
        params.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().to_device(&Device::Cpu)?))).collect::<Result<_>>()?;
    // Serialised in memory and written like every other output (the umask's permissions: writing
    // through safetensors' own file path left weights readable by their owner only).
    let bytes = safetensors::serialize(&tensors, None).map_err(|e| NnError::bad(path, e.to_string()))?;
    write_atomic(path, &bytes)?;
    sha256_file(path)
}

/// Reads weights after checking them against the hash their card records.
pub fn load_tensors(path: &Path, expected_sha256: &str, dev: &Device) -> Result<BTreeMap<String, Tensor>> {
    let actual = sha256_file(path)?;
    if actual != expected_sha256 {
        return Err(NnError::bad(path, format!("weights hash {actual} does not match the card ({expected_sha256})")));
    }
    read_tensors(path, dev)
}

pub fn read_tensors(path: &Path, dev: &Device) -> Result<BTreeMap<String, Tensor>> {
    let map = candle_core::safetensors::load(path, dev).map_err(|e| NnError::bad(path, e.to_string()))?;
    Ok(map.into_iter().collect())
}
