//! Arithmetic precision: f32 (default, bit-for-bit reproducible) or bf16, where GPUs run matrix
//! work several times faster. Inference converts the weights once; training in bf16 is mixed
//! precision (f32 master weights, cast to bf16 inside each step's graph, so AdamW's updates and
//! state stay f32; layer norm and losses in f32).

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

    /// bf16 exists for GPUs: a CPU has no bf16 matrix units, so it only loses digits there.
    pub fn warn_if_slow_on(self, dev: &candle_core::Device) {
        if self == Precision::Bf16 && dev.is_cpu() {
            tracing::warn!("--precision bf16 on the CPU: slower than f32 and less precise; meant for GPUs");
        }
    }

    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}
