//! Network-only throughput: how many spectra per second a network turns into outputs, with its
//! inputs already in memory (no file I/O), for `starpipe throughput` and the benchmarks.

use candle_core::{Device, Tensor};
use std::time::Instant;

/// Deterministic pseudo-inputs in the feature range (−0.2, 0.2): speed does not depend on them.
pub fn pseudo_inputs(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 0.4).collect()
}

/// Spectra per second of `forward` (one batch of `batch` spectra per call, outputs copied back to
/// the host as the stages do): one warm-up call (a GPU compiles its kernels then), then calls for
/// at least `seconds`.
pub fn spectra_per_s<E: From<candle_core::Error>>(
    inputs: &Tensor,
    batch: usize,
    seconds: f64,
    forward: impl Fn(&Tensor) -> Result<Tensor, E>,
) -> Result<f64, E> {
    let to_host = |t: Tensor| -> Result<(), E> {
        t.to_device(&Device::Cpu)?.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        Ok(())
    };
    to_host(forward(inputs)?)?;
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed().as_secs_f64() < seconds || done == 0 {
        to_host(forward(inputs)?)?;
        done += batch;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}
