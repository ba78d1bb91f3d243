//! Arithmetic precision of inference: f32 (default, bit-for-bit reproducible) or bf16, where GPUs
//! run matrix work several times faster. Training keeps f32 weights whatever this says.

use candle_core::DType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    F32,
    /// Weights and activations in bfloat16 (8 bits of mantissa: about 3 significant digits);
    /// inputs are converted on the device and outputs returned as f32. Meant for GPUs: on a CPU it
    /// is slower than f32.
    Bf16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}
