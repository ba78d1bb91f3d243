//! `--device auto|cpu|cuda` → a candle device.

use super::{ModelError, Result};
use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    /// The first CUDA GPU when this binary has the `cuda` feature and a GPU answers, else the CPU
    /// (logged), so one pipeline file serves a laptop and a GPU node.
    #[default]
    Auto,
    Cpu,
    /// The first CUDA GPU; needs a binary built with `--features cuda`.
    Cuda,
}

impl ComputeDevice {
    pub fn open(self) -> Result<Device> {
        match self {
            ComputeDevice::Auto if cfg!(feature = "cuda") => match Device::new_cuda(0) {
                Ok(d) => {
                    tracing::info!("--device auto: using CUDA GPU 0");
                    Ok(d)
                }
                Err(e) => {
                    tracing::info!(reason = %e, "--device auto: no usable GPU, using the CPU");
                    Ok(Device::Cpu)
                }
            },
            ComputeDevice::Auto => Ok(Device::Cpu),
            ComputeDevice::Cpu => Ok(Device::Cpu),
            ComputeDevice::Cuda if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
            ComputeDevice::Cuda => Err(ModelError::Invalid(
                "--device cuda: this starpipe was built without the `cuda` feature (see docs in README: \
                 cargo build --release --features cuda)"
                    .into(),
            )),
        }
    }
}
