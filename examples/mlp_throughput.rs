//! Network-only inference throughput of a starpipe model (no I/O): the candle side of
//! `scripts/bench/infer.py`. Prints one JSON line per batch size.
//!
//! usage: mlp_throughput MODEL_DIR [cpu|cuda] [BATCH ...]

use starpipe::model::infer::Predictor;
use starpipe::model::predict::predict_standardized;
use starpipe::nn::device::ComputeDevice;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model =
        args.first().ok_or_else(|| anyhow::anyhow!("usage: mlp_throughput MODEL_DIR [cpu|cuda] [BATCH ...]"))?;
    let device = match args.get(1).map(String::as_str) {
        Some("cuda") => ComputeDevice::Cuda,
        _ => ComputeDevice::Cpu,
    };
    let batches: Vec<usize> = args.iter().skip(2).map(|b| b.parse()).collect::<Result<_, _>>()?;
    let batches = if batches.is_empty() { vec![256, 4096] } else { batches };
    let dev = device.open()?;
    let p = Predictor::load(std::path::Path::new(model), None, &dev)?;
    let n_in = p.base.config.n_in;
    // Deterministic pseudo-spectra in the feature range.
    let total = 16_384;
    let x: Vec<f32> = (0..total * n_in).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 0.4).collect();
    for &batch in &batches {
        let net = p.network();
        predict_standardized(&net, &x[..batch.min(total) * n_in], n_in, batch, &dev)?; // warm-up
        let mut n = 0;
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < 3.0 {
            n += predict_standardized(&net, &x, n_in, batch, &dev)?.len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"impl\": \"candle\", \"device\": \"{device:?}\", \"batch\": {batch}, \"spectra_per_s\": {:.1}}}",
            n as f64 / secs
        );
    }
    Ok(())
}
