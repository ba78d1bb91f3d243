//! Host matrices → tensors.

use super::Result;
use candle_core::{Device, Tensor};

/// Gathers the given rows of a row-major matrix into an [rows, width] tensor.
pub fn rows_tensor(data: &[f32], width: usize, rows: &[usize], dev: &Device) -> Result<Tensor> {
    let mut buf = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        buf.extend_from_slice(&data[r * width..(r + 1) * width]);
    }
    Ok(Tensor::from_vec(buf, (rows.len(), width), dev)?)
}
