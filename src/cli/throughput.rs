//! `starpipe throughput`: network-only inference speed of an MLP or an encoder on this machine's
//! device, in f32 or bf16 (inputs in memory, no file I/O). One JSON line per batch size.

use super::args::{at_least_one, positive};
use anyhow::Result;
use clap::{Args, Subcommand};
use starpipe::encoder::network::{Encoder, EncoderConfig, EncoderPreset};
use starpipe::encoder::tokens::TokenLayout;
use starpipe::model::infer::Predictor;
use starpipe::model::mlp::Mode;
use starpipe::nn::device::ComputeDevice;
use starpipe::nn::precision::Precision;
use starpipe::nn::throughput::{pseudo_inputs, spectra_per_s};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ThroughputCommand {
    /// A trained MLP (with its adapter, if given): spectra/s of the network alone.
    Mlp(MlpArgs),
    /// The transformer encoder: a trained one (--encoder) or a preset's architecture with fresh
    /// weights (speed does not depend on the weights).
    Encoder(EncoderArgs),
}

#[derive(Args, Debug)]
pub struct Common {
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = crate::cli::args::device)]
    device: ComputeDevice,
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Seconds to time each batch size for (after one warm-up call).
    #[arg(long, default_value_t = 3.0, value_parser = positive)]
    seconds: f64,
}

#[derive(Args, Debug)]
pub struct MlpArgs {
    /// Model directory (from train).
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Spectra per network call (repeatable).
    #[arg(long, default_values_t = [4096], value_parser = at_least_one)]
    batch: Vec<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct EncoderArgs {
    /// Encoder directory (from train-encoder); without it, --preset with fresh weights.
    #[arg(long)]
    encoder: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = EncoderPreset::Specclip)]
    preset: EncoderPreset,
    /// Spectra per encoder call (repeatable).
    #[arg(long, default_values_t = [64], value_parser = at_least_one)]
    batch: Vec<usize>,
    #[command(flatten)]
    common: Common,
}

fn line(network: &str, c: &Common, dev: &candle_core::Device, batch: usize, rate: f64, extra: &str) {
    let device = if dev.is_cuda() { "cuda" } else { "cpu" };
    println!(
        "{{\"impl\": \"candle\", \"network\": \"{network}\", \"device\": \"{device}\", \"precision\": \"{}\", \"batch\": {batch}, \"spectra_per_s\": {rate:.1}{extra}}}",
        c.precision.as_str()
    );
}

pub fn throughput(c: ThroughputCommand) -> Result<()> {
    match c {
        ThroughputCommand::Mlp(a) => {
            let dev = a.common.device.open()?;
            let p = Predictor::load(&a.model, a.adapter.as_deref(), &dev)?.with_precision(a.common.precision)?;
            let n_in = p.base.config.n_in;
            let dtype = a.common.precision.dtype();
            for &batch in &a.batch {
                let x = candle_core::Tensor::from_vec(pseudo_inputs(batch * n_in), (batch, n_in), &dev)?;
                let rate = spectra_per_s(&x, batch, a.common.seconds, |x| {
                    p.network().forward(&x.to_dtype(dtype)?, &mut Mode::Eval)
                })?;
                line("mlp", &a.common, &dev, batch, rate, "");
            }
        }
        ThroughputCommand::Encoder(a) => {
            let dev = a.common.device.open()?;
            let (enc, name) = match &a.encoder {
                Some(dir) => (starpipe::encoder::train::load_encoder(dir, &dev)?.0, "encoder".to_string()),
                None => {
                    let layout = TokenLayout::specclip(1462);
                    let cfg = EncoderConfig::preset(a.preset, layout.n_tokens(), layout.token_dim());
                    (Encoder::init(cfg, 1, &dev)?, format!("encoder-{:?}", a.preset).to_lowercase())
                }
            };
            let enc = enc.to_dtype(a.common.precision.dtype())?;
            let (t, k) = (enc.config.n_tokens, enc.config.token_dim);
            for &batch in &a.batch {
                let x = candle_core::Tensor::from_vec(pseudo_inputs(batch * t * k), (batch, t, k), &dev)?;
                let rate = spectra_per_s(&x, batch, a.common.seconds, |x| enc.embed(x))?;
                let gflops = rate * enc.config.flops_per_spectrum() / 1e9;
                let extra = format!(", \"parameters\": {}, \"gflop_per_s\": {gflops:.1}", enc.n_parameters());
                line(&name, &a.common, &dev, batch, rate, &extra);
            }
        }
    }
    Ok(())
}
