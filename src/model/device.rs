//! `--device cpu|cuda` → a candle device.

use super::{ModelError, Result};
use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    #[default]
    Cpu,
    /// The first CUDA GPU; needs a binary built with `--features cuda`.
    Cuda,
}

impl ComputeDevice {
    pub fn open(self) -> Result<Device> {
        match self {
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
