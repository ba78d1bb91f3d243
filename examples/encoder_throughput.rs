//! Encoder inference throughput (no I/O) of the presets: spectra/s and achieved GFLOP/s, for
//! `scripts/bench/encoder.sh`. Weights are freshly initialised (speed does not depend on them).
//!
//! usage: encoder_throughput [cpu|cuda] [small|specclip ...] [--batch B] [--seconds S]

use starpipe::encoder::network::{Encoder, EncoderConfig, EncoderPreset};
use starpipe::encoder::tokens::TokenLayout;
use starpipe::nn::device::ComputeDevice;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = if args.iter().any(|a| a == "cuda") { ComputeDevice::Cuda } else { ComputeDevice::Cpu };
    let value = |flag: &str, default: f64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (batch, seconds) = (value("--batch", 64.0) as usize, value("--seconds", 5.0));
    let mut presets = Vec::new();
    if args.iter().any(|a| a == "small") {
        presets.push(EncoderPreset::Small);
    }
    if args.iter().any(|a| a == "specclip") {
        presets.push(EncoderPreset::Specclip);
    }
    if presets.is_empty() {
        presets = vec![EncoderPreset::Small, EncoderPreset::Specclip];
    }
    let dev = device.open()?;
    let layout = TokenLayout::specclip(1462);
    for preset in presets {
        let cfg = EncoderConfig::preset(preset, layout.n_tokens(), layout.token_dim());
        let enc = Encoder::init(cfg.clone(), 1, &dev)?;
        let n = batch * layout.n_tokens() * layout.token_dim();
        let tokens = candle_core::Tensor::from_vec(
            (0..n).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 2.0).collect::<Vec<f32>>(),
            (batch, layout.n_tokens(), layout.token_dim()),
            &dev,
        )?;
        enc.embed(&tokens)?.to_device(&candle_core::Device::Cpu)?; // warm-up
        let start = Instant::now();
        let mut done = 0;
        while start.elapsed().as_secs_f64() < seconds || done == 0 {
            enc.embed(&tokens)?.to_device(&candle_core::Device::Cpu)?;
            done += batch;
        }
        let rate = done as f64 / start.elapsed().as_secs_f64();
        println!(
            "{{\"preset\": \"{preset:?}\", \"device\": \"{device:?}\", \"batch\": {batch}, \"parameters\": {}, \"gflop_per_spectrum\": {:.4}, \"spectra_per_s\": {rate:.1}, \"gflop_per_s\": {:.1}}}",
            enc.n_parameters(),
            cfg.flops_per_spectrum() / 1e9,
            rate * cfg.flops_per_spectrum() / 1e9
        );
    }
    Ok(())
}
