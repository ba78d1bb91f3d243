//! The transformer encoder: linear token embedding + learned positions → pre-norm blocks (multi-head
//! self-attention, GELU MLP) → final layer norm → mean over all tokens = the embedding. A linear
//! head reconstructs tokens for masked-token pre-training.
//!
//! Training paths use only ops with a backward pass: layer norm from primitives and
//! `candle_nn::ops::softmax` (the fused `softmax_last_dim` and layer norm drop gradients).

use super::Result;
use crate::nn::params::{Init, Params, WeightPlan, adopt, cast, clone_params, materialize};
use candle_core::{D, DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const LN_EPS: f32 = 1e-5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    pub n_tokens: usize,
    pub token_dim: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderPreset {
    /// 2 layers, 4 heads, width 64 (~0.1 M weights): trains on a 2-core CPU in minutes.
    Small,
    /// 3 layers, 4 heads, width 96 (~0.35 M weights, 3× small's arithmetic): the largest that
    /// pre-trains on 20,000 spectra for two epochs within 30 minutes (21) on a 2-core CPU
    /// (scripts/bench/README.md).
    Medium,
    /// SpecCLIP's size: 6 layers, 6 heads, width 768 (~43 M weights), for GPUs.
    Specclip,
}

impl EncoderConfig {
    pub fn preset(preset: EncoderPreset, n_tokens: usize, token_dim: usize) -> Self {
        let (d_model, n_layers, n_heads) = match preset {
            EncoderPreset::Small => (64, 2, 4),
            EncoderPreset::Medium => (96, 3, 4),
            EncoderPreset::Specclip => (768, 6, 6),
        };
        Self { n_tokens, token_dim, d_model, n_layers, n_heads, d_ff: 4 * d_model }
    }

    /// Multiply-adds ×2 of one forward pass of one spectrum (embedding, blocks; no head).
    pub fn flops_per_spectrum(&self) -> f64 {
        let (t, d, f) = (self.n_tokens as f64, self.d_model as f64, self.d_ff as f64);
        let per_layer = t * (4.0 * d * d + 2.0 * d * f) + 2.0 * t * t * d;
        2.0 * (t * self.token_dim as f64 * d + self.n_layers as f64 * per_layer)
    }
}

#[derive(Debug, Clone)]
pub struct Encoder {
    pub config: EncoderConfig,
    pub params: Params,
}

impl Encoder {
    pub fn init(config: EncoderConfig, seed: u64, dev: &Device) -> Result<Self> {
        let params = materialize(&Self::plan(&config), &mut ChaCha8Rng::seed_from_u64(seed ^ 0xE4C), dev)?;
        Ok(Self { config, params })
    }

    fn plan(config: &EncoderConfig) -> WeightPlan {
        let (t, k, d, f) = (config.n_tokens, config.token_dim, config.d_model, config.d_ff);
        let mut plan = WeightPlan::new();
        let lin = |plan: &mut WeightPlan, name: &str, n_in: usize, n_out: usize| {
            let b = (1.0 / n_in as f64).sqrt() * 3f64.sqrt();
            plan.push((format!("{name}.weight"), vec![n_out, n_in], Init::Uniform(b)));
            plan.push((format!("{name}.bias"), vec![n_out], Init::Const(0.0)));
        };
        let small = Init::Uniform(0.02 * 3f64.sqrt());
        lin(&mut plan, "embed", k, d);
        plan.push(("position".into(), vec![t, d], small));
        plan.push(("mask_token".into(), vec![d], small));
        let norm = |plan: &mut WeightPlan, name: &str| {
            plan.push((format!("{name}.weight"), vec![d], Init::Const(1.0)));
            plan.push((format!("{name}.bias"), vec![d], Init::Const(0.0)));
        };
        for l in 0..config.n_layers {
            norm(&mut plan, &format!("layers.{l}.ln1"));
            norm(&mut plan, &format!("layers.{l}.ln2"));
            for proj in ["q", "k", "v", "o"] {
                lin(&mut plan, &format!("layers.{l}.attn.{proj}"), d, d);
            }
            lin(&mut plan, &format!("layers.{l}.ff1"), d, f);
            lin(&mut plan, &format!("layers.{l}.ff2"), f, d);
        }
        norm(&mut plan, "final_ln");
        lin(&mut plan, "reconstruct", d, k);
        plan
    }

    pub fn from_tensors(config: EncoderConfig, tensors: BTreeMap<String, Tensor>) -> std::result::Result<Self, String> {
        Ok(Self { params: adopt(&Self::plan(&config), tensors)?, config })
    }

    pub fn n_parameters(&self) -> usize {
        self.params.values().map(|v| v.elem_count()).sum()
    }

    /// A copy with weights in `dtype` (inference in bf16).
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self { config: self.config.clone(), params: cast(&self.params, dtype)? })
    }

    pub fn deep_copy(&self) -> Result<Self> {
        Ok(Self { config: self.config.clone(), params: clone_params(&self.params)? })
    }

    /// A weight in `dtype`: a no-op for weights already in it; under bf16 training the cast is in
    /// the graph, so the gradient reaches the f32 master weight.
    fn p_as(&self, name: &str, dtype: DType) -> Result<Tensor> {
        Ok(self.params[name].as_tensor().to_dtype(dtype)?)
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.p_as(&format!("{name}.weight"), x.dtype())?;
        let b = self.p_as(&format!("{name}.bias"), x.dtype())?;
        Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?)
    }

    /// Layer norm, computed in f32 whatever the pass's dtype (a row's mean and variance want more
    /// than bf16's 8 bits of mantissa), returned in the pass's dtype.
    fn norm(&self, x: &Tensor, name: &str, training: bool) -> Result<Tensor> {
        let g = self.p_as(&format!("{name}.weight"), DType::F32)?;
        let b = self.p_as(&format!("{name}.bias"), DType::F32)?;
        let x32 = x.to_dtype(DType::F32)?;
        let y = if training {
            candle_nn::ops::layer_norm_slow(&x32, &g, &b, LN_EPS)?
        } else {
            candle_nn::ops::layer_norm(&x32, &g, &b, LN_EPS)?
        };
        Ok(y.to_dtype(x.dtype())?)
    }

    fn attention(&self, x: &Tensor, l: usize) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let h = self.config.n_heads;
        let dh = d / h;
        let heads = |name: &str| -> Result<Tensor> {
            Ok(self
                .linear(x, &format!("layers.{l}.attn.{name}"))?
                .reshape((b, t, h, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (heads("q")?, heads("k")?, heads("v")?);
        // Softmax in f32: exponentials of bf16 scores lose the small weights.
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (dh as f64).sqrt())?.to_dtype(DType::F32)?;
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?.to_dtype(v.dtype())?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, t, d))?;
        self.linear(&out, &format!("layers.{l}.attn.o"))
    }

    /// Token states after the final layer norm, [B, T, D]. `mask` ([B, T] of 0/1) replaces the
    /// embedded tokens where it is 1 with the learned mask token.
    pub fn hidden(&self, tokens: &Tensor, mask: Option<&Tensor>, training: bool) -> Result<Tensor> {
        let dtype = tokens.dtype();
        let mut x = self.linear(tokens, "embed")?;
        if let Some(m) = mask {
            let m = m.to_dtype(dtype)?.unsqueeze(D::Minus1)?;
            let keep = (1.0 - &m)?;
            x = (x.broadcast_mul(&keep)? + m.broadcast_mul(&self.p_as("mask_token", dtype)?)?)?;
        }
        x = x.broadcast_add(&self.p_as("position", dtype)?)?;
        for l in 0..self.config.n_layers {
            let a = self.attention(&self.norm(&x, &format!("layers.{l}.ln1"), training)?, l)?;
            x = (x + a)?;
            let y = self.norm(&x, &format!("layers.{l}.ln2"), training)?;
            let y = self.linear(&self.linear(&y, &format!("layers.{l}.ff1"))?.gelu()?, &format!("layers.{l}.ff2"))?;
            x = (x + y)?;
        }
        self.norm(&x, "final_ln", training)
    }

    /// Embeddings [B, D] in f32: the mean over all tokens (the scale token included, as SpecCLIP).
    /// Tokens are converted to the weights' dtype; the mean is taken in f32 whatever it is.
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let dtype = self.params["embed.weight"].dtype();
        Ok(self.hidden(&tokens.to_dtype(dtype)?, None, false)?.to_dtype(DType::F32)?.mean(1)?)
    }

    /// Embeddings [B, D] in f32 through the training path (layer norm from primitives, so
    /// gradients flow), computed in the tokens' dtype (bf16 for mixed-precision training).
    pub fn embed_for_training(&self, tokens: &Tensor) -> Result<Tensor> {
        Ok(self.hidden(tokens, None, true)?.to_dtype(DType::F32)?.mean(1)?)
    }

    /// Masked-token reconstruction loss: mean squared error over the masked tokens only.
    pub fn masked_loss(&self, tokens: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.reconstruction_loss(tokens, tokens, mask)
    }

    /// The loss with inputs and targets apart (they are the same tokens in training). The network
    /// runs in the inputs' dtype; the loss is taken in f32.
    pub fn reconstruction_loss(&self, inputs: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let pred = self.linear(&self.hidden(inputs, Some(mask), true)?, "reconstruct")?.to_dtype(DType::F32)?;
        let err = (pred - targets.to_dtype(DType::F32)?)?.sqr()?.sum(D::Minus1)?; // [B, T]
        let n = (mask.sum_all()? * self.config.token_dim as f64)?;
        Ok((err * mask)?.sum_all()?.broadcast_div(&n)?)
    }
}

/// The learned temperature of the contrastive loss starts at CLIP's 0.07 (logit scale ln(1/0.07)).
pub const INITIAL_LOGIT_SCALE: f32 = 2.659_26;
/// CLIP's ceiling on the logit scale (temperature ≥ 0.01), applied after each step.
pub const MAX_LOGIT_SCALE: f32 = 4.605_17;

/// Rows scaled to unit length.
fn unit_rows(z: &Tensor) -> Result<Tensor> {
    Ok(z.broadcast_div(&(z.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?)?)
}

/// log softmax along the last axis, shifted by the detached row maximum (exact, and stable).
fn log_softmax_rows(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    Ok(shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?)
}

/// CLIP's symmetric InfoNCE loss between two views of the same stars: row i of `a` (one survey's
/// embeddings) and row i of `b` (the other survey's) are a pair, every other row a negative.
/// Cosine similarities times exp(`logit_scale`) (a learned scalar, shape [1]) are the logits;
/// the loss is the mean cross-entropy of finding the partner, in both directions.
pub fn contrastive_loss(a: &Tensor, b: &Tensor, logit_scale: &Tensor) -> Result<Tensor> {
    let n = a.dim(0)?;
    let logits = unit_rows(a)?.matmul(&unit_rows(b)?.t()?)?.broadcast_mul(&logit_scale.exp()?)?;
    let eye = Tensor::eye(n, logits.dtype(), logits.device())?;
    let ab = (log_softmax_rows(&logits)? * &eye)?.sum_all()?;
    let ba = (log_softmax_rows(&logits.t()?.contiguous()?)? * &eye)?.sum_all()?;
    Ok(((ab + ba)? / (-2.0 * n as f64))?)
}

/// Fraction of pairs whose partner is the most similar of all candidates (cosine), a over b.
pub fn retrieval_top1(a: &Tensor, b: &Tensor) -> Result<f64> {
    let sim: Vec<Vec<f32>> = unit_rows(a)?.matmul(&unit_rows(b)?.t()?)?.to_device(&Device::Cpu)?.to_vec2()?;
    let hits =
        sim.iter().enumerate().filter(|(i, row)| row.iter().enumerate().all(|(j, v)| j == *i || *v < row[*i])).count();
    Ok(hits as f64 / sim.len().max(1) as f64)
}

/// `n_chunks` contiguous runs of `chunk` window tokens per spectrum (never the scale token), drawn
/// from `rng`; [B, T] of 0/1.
pub fn random_mask(
    batch: usize,
    n_tokens: usize,
    n_chunks: usize,
    chunk: usize,
    rng: &mut ChaCha8Rng,
    dev: &Device,
) -> Result<Tensor> {
    let windows = n_tokens - 1;
    let mut m = vec![0f32; batch * n_tokens];
    for b in 0..batch {
        for _ in 0..n_chunks {
            let len = chunk.min(windows);
            let start = rng.random_range(0..=windows - len);
            m[b * n_tokens + start..b * n_tokens + start + len].fill(1.0);
        }
    }
    Ok(Tensor::from_vec(m, (batch, n_tokens), dev)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn tiny() -> Encoder {
        let cfg = EncoderConfig { n_tokens: 9, token_dim: 5, d_model: 8, n_layers: 2, n_heads: 2, d_ff: 16 };
        Encoder::init(cfg, 1, &Device::Cpu).unwrap()
    }

    fn tokens(b: usize, seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..b * 9 * 5).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_vec(v, (b, 9, 5), &Device::Cpu).unwrap()
    }

    #[test]
    fn masked_loss_ignores_unmasked_tokens() {
        let e = tiny();
        let t = tokens(3, 2);
        let mut m = vec![0f32; 27];
        m[2] = 1.0;
        m[9 + 4] = 1.0;
        let mask = Tensor::from_vec(m.clone(), (3, 9), &Device::Cpu).unwrap();
        let loss = |inputs: &Tensor, targets: &Tensor| -> f32 {
            e.reconstruction_loss(inputs, targets, &mask).unwrap().to_scalar().unwrap()
        };
        let base = loss(&t, &t);
        let edit = |b: usize, tok: usize, by: f32| {
            let mut v = t.to_vec3::<f32>().unwrap();
            v[b][tok][1] += by;
            Tensor::new(v, &Device::Cpu).unwrap()
        };
        // Targets at unmasked tokens do not count...
        assert_eq!(loss(&t, &edit(0, 5, 100.0)), base);
        // ...targets at masked tokens do...
        assert_ne!(loss(&t, &edit(0, 2, 1.0)), base);
        // ...and a masked token's input is never seen (the mask token replaces it).
        assert_eq!(loss(&edit(1, 4, 100.0), &t), base);
        let none = Tensor::zeros((3, 9), DType::F32, &Device::Cpu).unwrap();
        assert!(e.masked_loss(&t, &none).unwrap().to_scalar::<f32>().unwrap().is_nan(), "no masked token, no loss");
    }

    #[test]
    fn an_embedding_is_the_same_in_a_batch_and_alone() {
        let e = tiny();
        let t = tokens(4, 3);
        let batch = e.embed(&t).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in batch.iter().enumerate() {
            let alone = e.embed(&t.narrow(0, i, 1).unwrap()).unwrap().to_vec2::<f32>().unwrap();
            for (a, b) in alone[0].iter().zip(row) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn every_weight_receives_a_gradient_in_pre_training() {
        let e = tiny();
        let t = tokens(4, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mask = random_mask(4, 9, 2, 2, &mut rng, &Device::Cpu).unwrap();
        // f32, and bf16 mixed precision: the gradient crosses the casts back to the f32 weights.
        for dtype in [DType::F32, DType::BF16] {
            let grads = e.masked_loss(&t.to_dtype(dtype).unwrap(), &mask).unwrap().backward().unwrap();
            for (name, v) in &e.params {
                let g = grads.get(v).unwrap_or_else(|| panic!("{dtype:?}: no gradient for {name}"));
                assert_eq!(g.dtype(), DType::F32);
                let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(norm > 0.0, "{dtype:?}: zero gradient for {name}");
            }
        }
    }

    #[test]
    fn bf16_training_passes_stay_close_to_f32() {
        // The losses and gradients a mixed-precision step sees, against f32: bf16 rounds each
        // activation at ~0.4 %, so a few percent after two layers is the expected size.
        let e = tiny();
        let t = tokens(8, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mask = random_mask(8, 9, 2, 2, &mut rng, &Device::Cpu).unwrap();
        let loss = |dtype| e.masked_loss(&t.to_dtype(dtype).unwrap(), &mask).unwrap();
        let (l32, l16) = (loss(DType::F32), loss(DType::BF16));
        let (v32, v16): (f32, f32) = (l32.to_scalar().unwrap(), l16.to_scalar().unwrap());
        assert!((v16 - v32).abs() < 0.03 * v32, "masked loss bf16 {v16} vs f32 {v32}");
        let (g32, g16) = (l32.backward().unwrap(), l16.backward().unwrap());
        let w = e.params["layers.0.ff1.weight"].as_tensor();
        let (a, b) = (g32.get(w).unwrap(), g16.get(w).unwrap());
        let cos: f32 = ((a * b).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
            / (a.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap()
                * b.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap());
        assert!(cos > 0.99, "gradient direction bf16 vs f32: cosine {cos}");
        let za = e.embed_for_training(&t.to_dtype(DType::BF16).unwrap()).unwrap();
        assert_eq!(za.dtype(), DType::F32, "embeddings leave the training path in f32");
    }

    #[test]
    fn masks_cover_whole_chunks_and_never_the_scale_token() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let m = random_mask(50, 147, 6, 10, &mut rng, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        for row in m {
            assert_eq!(row[146], 0.0);
            let masked = row.iter().filter(|&&v| v == 1.0).count();
            assert!((10..=60).contains(&masked), "{masked}");
        }
    }

    #[test]
    fn bf16_embeddings_stay_within_two_percent_of_f32() {
        let dev = Device::Cpu;
        let cfg = EncoderConfig { n_tokens: 9, token_dim: 5, d_model: 32, n_layers: 2, n_heads: 4, d_ff: 64 };
        let enc = Encoder::init(cfg, 7, &dev).unwrap();
        let t = tokens(6, 3);
        let a: Vec<Vec<f32>> = enc.embed(&t).unwrap().to_vec2().unwrap();
        let half = enc.to_dtype(DType::BF16).unwrap();
        let b = half.embed(&t).unwrap();
        assert_eq!(b.dtype(), DType::F32, "embeddings leave the encoder as f32");
        let b: Vec<Vec<f32>> = b.to_vec2().unwrap();
        for (x, y) in a.iter().zip(&b) {
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            let diff = x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt();
            // bf16's 8-bit mantissa: ~0.4 % per op; two blocks of attention and MLP stay near 1 %.
            assert!(diff / norm < 0.02 && diff > 0.0, "relative difference {}", diff / norm);
        }
    }

    #[test]
    fn contrastive_loss_rewards_matching_pairs_and_trains_every_weight() {
        let e = tiny();
        let (a, b) = (tokens(4, 5), tokens(4, 6));
        let scale = candle_core::Var::new(&[INITIAL_LOGIT_SCALE], &Device::Cpu).unwrap();
        let (za, zb) = (e.embed_for_training(&a).unwrap(), e.embed_for_training(&b).unwrap());
        // Identical views are found (loss below chance, ln 4); unrelated ones are not.
        let same: f32 = contrastive_loss(&za, &za, scale.as_tensor()).unwrap().to_scalar().unwrap();
        let other: f32 = contrastive_loss(&za, &zb, scale.as_tensor()).unwrap().to_scalar().unwrap();
        assert!(same < (4f32).ln() && same < other, "same {same}, other {other}");
        assert_eq!(retrieval_top1(&za, &za).unwrap(), 1.0);
        let loss = contrastive_loss(&za, &zb, scale.as_tensor()).unwrap();
        let grads = loss.backward().unwrap();
        assert!(grads.get(scale.as_tensor()).is_some(), "the temperature gets no gradient");
        for (name, v) in &e.params {
            // The reconstruction head and the mask token take no part in an embedding.
            if name.starts_with("reconstruct") || name == "mask_token" {
                continue;
            }
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name} gets no gradient"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0, "{name} has a zero gradient");
        }
    }
}
