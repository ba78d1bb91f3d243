//! `--device auto|cpu|cuda` → a candle device.

use super::{NnError, Result};
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

/// The CUDA libraries a GPU run loads (driver, cuBLAS, cuBLASLt, cuRAND, NVRTC) that this machine
/// cannot load: with the `cuda` feature, cudarc opens them at run time and panics on a missing
/// one, so ask first. Empty without the `cuda` feature (nothing is needed then).
pub fn missing_gpu_libraries() -> Vec<&'static str> {
    #[cfg(feature = "cuda")]
    {
        // SAFETY: each call only tries to dlopen a library by name and closes it again.
        let present = unsafe {
            [
                ("libcuda (the NVIDIA driver)", cudarc::driver::sys::is_culib_present()),
                ("libcublas", cudarc::cublas::sys::is_culib_present()),
                ("libcublasLt", cudarc::cublaslt::sys::is_culib_present()),
                ("libcurand", cudarc::curand::sys::is_culib_present()),
                ("libnvrtc", cudarc::nvrtc::sys::is_culib_present()),
            ]
        };
        present.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect()
    }
    #[cfg(not(feature = "cuda"))]
    Vec::new()
}

impl ComputeDevice {
    pub fn open(self) -> Result<Device> {
        // Only a binary that could use a GPU asks which CUDA libraries load (each a dlopen).
        let missing =
            if cfg!(feature = "cuda") && self != ComputeDevice::Cpu { missing_gpu_libraries() } else { vec![] };
        match self {
            ComputeDevice::Auto if cfg!(feature = "cuda") && !missing.is_empty() => {
                tracing::info!(missing = %missing.join(", "), "--device auto: no usable GPU, using the CPU");
                Ok(Device::Cpu)
            }
            ComputeDevice::Cuda if cfg!(feature = "cuda") && !missing.is_empty() => Err(NnError::Invalid(format!(
                "--device cuda: no GPU driver or CUDA library found on this machine (cannot load {}); use \
                     --device cpu or auto",
                missing.join(", ")
            ))),
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
            ComputeDevice::Cuda if cfg!(feature = "cuda") => Device::new_cuda(0).map_err(|e| {
                NnError::Invalid(format!("--device cuda: GPU 0 cannot be used ({e}); use --device cpu or auto"))
            }),
            ComputeDevice::Cuda => Err(NnError::Invalid(
                "--device cuda: this starpipe was built without the `cuda` feature (DEVELOPERS.md: \
                 GPU build)"
                    .into(),
            )),
        }
    }
}
