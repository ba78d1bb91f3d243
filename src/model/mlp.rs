//! The network: an MLP predicting (mean, log σ) of Teff, log g, [Fe/H] in standardised units, and
//! the three ways of adapting it to a new survey (arXiv 2602.15021).
//!
//! Weights live in named sets (`Params`), one per trained thing: the base network, a LoRA pair per
//! adapted layer, a residual head. A strategy freezes a set by never handing it to the optimiser
//! and by detaching it in the forward pass, so no gradient is even computed for it.
//!
//! Layer norm and dropout are written from primitive ops in training mode: candle's fused layer
//! norm has no backward pass and would silently stop gradients; a test checks every weight gets a gradient.

use super::Result;
use crate::nn::params::{Init, Params, WeightPlan, adopt, cast, clone_params, materialize};
use candle_core::{D, DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Outputs per parameter: a mean and a log σ.
pub const N_OUT: usize = 6;
const LN_EPS: f32 = 1e-5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    pub n_in: usize,
    /// Widths of the hidden layers (Linear → LayerNorm → ReLU → Dropout each).
    pub hidden: Vec<usize>,
    pub layer_norm: bool,
    pub dropout: f32,
}

impl MlpConfig {
    /// Names of the Linear layers, input to output (`hidden.0`, …, `output`).
    pub fn linear_layers(&self) -> Vec<String> {
        (0..self.hidden.len()).map(|i| format!("hidden.{i}")).chain(["output".to_string()]).collect()
    }

    fn layer_dims(&self) -> Vec<(usize, usize)> {
        let mut dims = Vec::new();
        let mut width = self.n_in;
        for &h in &self.hidden {
            dims.push((width, h));
            width = h;
        }
        dims.push((width, N_OUT));
        dims
    }

    pub fn last_hidden(&self) -> usize {
        self.hidden.last().copied().unwrap_or(self.n_in)
    }
}

/// Whether a forward pass trains (dropout on, with its own seeded random stream) or evaluates.
pub enum Mode<'r> {
    Eval,
    Train(&'r mut ChaCha8Rng),
}

impl Mode<'_> {
    fn training(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    pub config: MlpConfig,
    pub params: Params,
}

impl Mlp {
    /// Kaiming-uniform weights for ReLU layers from a seeded stream (candle's own initialisers
    /// draw from an unseedable thread RNG on the CPU).
    pub fn init(config: MlpConfig, seed: u64, dev: &Device) -> Result<Self> {
        let params = materialize(&Self::plan(&config), &mut ChaCha8Rng::seed_from_u64(seed), dev)?;
        Ok(Self { config, params })
    }

    fn plan(config: &MlpConfig) -> WeightPlan {
        let mut plan = WeightPlan::new();
        for (name, (n_in, n_out)) in config.linear_layers().iter().zip(config.layer_dims()) {
            let is_output = name == "output";
            let w_bound = if is_output { (1.0 / n_in as f64).sqrt() } else { (6.0 / n_in as f64).sqrt() };
            plan.push((format!("{name}.weight"), vec![n_out, n_in], Init::Uniform(w_bound)));
            plan.push((format!("{name}.bias"), vec![n_out], Init::Uniform((1.0 / n_in as f64).sqrt())));
            if config.layer_norm && !is_output {
                plan.push((format!("{name}.norm.weight"), vec![n_out], Init::Const(1.0)));
                plan.push((format!("{name}.norm.bias"), vec![n_out], Init::Const(0.0)));
            }
        }
        plan
    }

    /// Rebuilds a network from loaded tensors, checking that they are exactly the expected set.
    pub fn from_tensors(config: MlpConfig, tensors: BTreeMap<String, Tensor>) -> std::result::Result<Self, String> {
        Ok(Self { params: adopt(&Self::plan(&config), tensors)?, config })
    }

    pub fn n_parameters(&self) -> usize {
        self.params.values().map(|v| v.elem_count()).sum()
    }

    /// A copy with weights in `dtype` (inference in bf16).
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self { config: self.config.clone(), params: cast(&self.params, dtype)? })
    }

    /// A weight in the arithmetic of the pass (`dtype`, the input's). The cast is part of the graph,
    /// so under bf16 training the gradient reaches the f32 master weight, which AdamW updates.
    fn weight(&self, name: &str, frozen: bool, dtype: DType) -> Result<Tensor> {
        let v = &self.params[name];
        let t = if frozen { v.as_detached_tensor() } else { v.as_tensor().clone() };
        Ok(t.to_dtype(dtype)?)
    }

    /// Forward pass; returns the output ([N, 6]: means then log σ) and the last hidden features.
    /// It computes in the input's dtype (f32, or bf16 for mixed precision: weights cast on the way,
    /// layer norm in f32), whatever the weights are stored in.
    pub fn forward_with_hidden(
        &self,
        x: &Tensor,
        frozen: bool,
        lora: Option<&Lora>,
        mode: &mut Mode,
    ) -> Result<(Tensor, Tensor)> {
        let dtype = x.dtype();
        let mut h = x.clone();
        let names = self.config.linear_layers();
        let mut last_hidden = x.clone();
        for name in &names {
            let w = self.weight(&format!("{name}.weight"), frozen, dtype)?;
            let b = self.weight(&format!("{name}.bias"), frozen, dtype)?;
            let mut y = h.matmul(&w.t()?)?.broadcast_add(&b)?;
            if let Some(delta) = lora.and_then(|l| l.delta(name, &h)) {
                y = (y + delta?)?;
            }
            if name == "output" {
                return Ok((y, last_hidden));
            }
            if self.config.layer_norm {
                // Mean and variance over a row want more than bf16's 8 bits of mantissa.
                let g = self.weight(&format!("{name}.norm.weight"), frozen, DType::F32)?;
                let beta = self.weight(&format!("{name}.norm.bias"), frozen, DType::F32)?;
                y = layer_norm(&y.to_dtype(DType::F32)?, &g, &beta, mode.training())?.to_dtype(dtype)?;
            }
            y = y.relu()?;
            if let Mode::Train(rng) = mode {
                y = dropout(&y, self.config.dropout, rng)?;
            }
            h = y;
            last_hidden = h.clone();
        }
        unreachable!("the layer list always ends with the output layer")
    }
}

fn layer_norm(x: &Tensor, g: &Tensor, b: &Tensor, training: bool) -> Result<Tensor> {
    Ok(if training {
        candle_nn::ops::layer_norm_slow(x, g, b, LN_EPS)?
    } else {
        candle_nn::ops::layer_norm(x, g, b, LN_EPS)?
    })
}

fn dropout(x: &Tensor, p: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.random::<f32>() < p { 0.0 } else { keep }).collect();
    Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)?)
}

/// LoRA on chosen Linear layers: y = Wx + b + (α/r)·B(Ax), A random, B zero (step 0 = base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Linear layers adapted, by name (`hidden.0` … `output`).
    pub layers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Lora {
    pub config: LoraConfig,
    pub params: Params,
}

impl Lora {
    pub fn init(config: LoraConfig, base: &MlpConfig, seed: u64, dev: &Device) -> Result<Self> {
        let plan = Self::plan(&config, base).map_err(super::ModelError::Invalid)?;
        let params = materialize(&plan, &mut ChaCha8Rng::seed_from_u64(seed ^ 0x10A), dev)?;
        Ok(Self { config, params })
    }

    fn plan(config: &LoraConfig, base: &MlpConfig) -> std::result::Result<WeightPlan, String> {
        let dims: BTreeMap<String, (usize, usize)> = base.linear_layers().into_iter().zip(base.layer_dims()).collect();
        let mut plan = WeightPlan::new();
        for layer in &config.layers {
            let &(n_in, n_out) = dims
                .get(layer)
                .ok_or_else(|| format!("--lora-layers: no layer '{layer}' (have {:?})", base.linear_layers()))?;
            // A like a Kaiming-uniform(a = √5) Linear init, as in the LoRA reference code.
            plan.push((format!("{layer}.lora_a"), vec![config.rank, n_in], Init::Uniform(1.0 / (n_in as f64).sqrt())));
            plan.push((format!("{layer}.lora_b"), vec![n_out, config.rank], Init::Const(0.0)));
        }
        Ok(plan)
    }

    pub fn from_tensors(
        config: LoraConfig,
        base: &MlpConfig,
        tensors: BTreeMap<String, Tensor>,
    ) -> std::result::Result<Self, String> {
        Ok(Self { params: adopt(&Self::plan(&config, base)?, tensors)?, config })
    }

    pub fn scale(&self) -> f64 {
        self.config.alpha / self.config.rank as f64
    }

    fn delta(&self, layer: &str, x: &Tensor) -> Option<Result<Tensor>> {
        let a = self.params.get(&format!("{layer}.lora_a"))?;
        let b = &self.params[&format!("{layer}.lora_b")];
        let (a, b) = (a.as_tensor().to_dtype(x.dtype()), b.as_tensor().to_dtype(x.dtype()));
        Some((|| Ok((x.matmul(&a?.t()?)?.matmul(&b?.t()?)? * self.scale())?))())
    }

    /// The base network with W' = W + (α/r)·B·A folded in, for inference.
    pub fn merged_into(&self, base: &Mlp) -> Result<Mlp> {
        let merged = clone_params(&base.params)?;
        for layer in &self.config.layers {
            let a = self.params[&format!("{layer}.lora_a")].as_tensor();
            let b = self.params[&format!("{layer}.lora_b")].as_tensor();
            let w = merged[&format!("{layer}.weight")].as_tensor();
            let updated = (w + (b.matmul(a)? * self.scale())?)?;
            merged[&format!("{layer}.weight")].set(&updated)?;
        }
        Ok(Mlp { config: base.config.clone(), params: merged })
    }
}

/// Residual head: ŷ = f(x) + a(h(x)) with a = Linear → ReLU → Linear, last layer zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResHeadConfig {
    pub n_in: usize,
    pub hidden: usize,
}

#[derive(Debug, Clone)]
pub struct ResHead {
    pub config: ResHeadConfig,
    pub params: Params,
}

impl ResHead {
    pub fn init(config: ResHeadConfig, seed: u64, dev: &Device) -> Result<Self> {
        let params = materialize(&Self::plan(&config), &mut ChaCha8Rng::seed_from_u64(seed ^ 0x4E5), dev)?;
        Ok(Self { config, params })
    }

    fn plan(config: &ResHeadConfig) -> WeightPlan {
        let (n_in, hid) = (config.n_in, config.hidden);
        vec![
            ("reshead.0.weight".into(), vec![hid, n_in], Init::Uniform((6.0 / n_in as f64).sqrt())),
            ("reshead.0.bias".into(), vec![hid], Init::Const(0.0)),
            ("reshead.1.weight".into(), vec![N_OUT, hid], Init::Const(0.0)),
            ("reshead.1.bias".into(), vec![N_OUT], Init::Const(0.0)),
        ]
    }

    pub fn from_tensors(config: ResHeadConfig, tensors: BTreeMap<String, Tensor>) -> std::result::Result<Self, String> {
        Ok(Self { params: adopt(&Self::plan(&config), tensors)?, config })
    }

    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self { config: self.config.clone(), params: cast(&self.params, dtype)? })
    }

    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let p = |n: &str| self.params[n].as_tensor().to_dtype(h.dtype());
        let z = h.matmul(&p("reshead.0.weight")?.t()?)?.broadcast_add(&p("reshead.0.bias")?)?.relu()?;
        Ok(z.matmul(&p("reshead.1.weight")?.t()?)?.broadcast_add(&p("reshead.1.bias")?)?)
    }
}

/// How a base network is adapted to the target survey.
#[derive(Debug, Clone)]
pub enum Adapter {
    /// The pre-trained network unchanged.
    ZeroShot,
    /// Every weight retrained: a full replacement weight set.
    Full(Mlp),
    Lora(Lora),
    ResHead(ResHead),
}

impl Adapter {
    pub fn kind(&self) -> &'static str {
        match self {
            Adapter::ZeroShot => "zeroshot",
            Adapter::Full(_) => "full",
            Adapter::Lora(_) => "lora",
            Adapter::ResHead(_) => "reshead",
        }
    }

    /// A copy with weights in `dtype` (inference in bf16). LoRA is merged before inference, so
    /// only the other kinds are cast.
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(match self {
            Adapter::ZeroShot => Adapter::ZeroShot,
            Adapter::Full(m) => Adapter::Full(m.to_dtype(dtype)?),
            Adapter::Lora(l) => Adapter::Lora(Lora { config: l.config.clone(), params: cast(&l.params, dtype)? }),
            Adapter::ResHead(r) => Adapter::ResHead(r.to_dtype(dtype)?),
        })
    }

    /// The weights this adapter trains (empty for zero-shot).
    pub fn trainable(&self) -> Option<&Params> {
        match self {
            Adapter::ZeroShot => None,
            Adapter::Full(m) => Some(&m.params),
            Adapter::Lora(l) => Some(&l.params),
            Adapter::ResHead(r) => Some(&r.params),
        }
    }
}

/// A base network with its adapter: the thing that predicts.
pub struct Network<'a> {
    pub base: &'a Mlp,
    pub adapter: &'a Adapter,
}

impl Network<'_> {
    /// [N, 6] standardised outputs (three means, then three log σ).
    pub fn forward(&self, x: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        match self.adapter {
            Adapter::ZeroShot => Ok(self.base.forward_with_hidden(x, true, None, mode)?.0),
            Adapter::Full(m) => Ok(m.forward_with_hidden(x, false, None, mode)?.0),
            Adapter::Lora(l) => Ok(self.base.forward_with_hidden(x, true, Some(l), mode)?.0),
            Adapter::ResHead(r) => {
                // The frozen part is evaluated deterministically: it is not being trained.
                let (y, h) = self.base.forward_with_hidden(x, true, None, &mut Mode::Eval)?;
                Ok((y + r.forward(&h.detach())?)?)
            }
        }
    }
}

/// Splits the [N, 6] output into means and log σ, each [N, 3].
pub fn split_output(y: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((y.narrow(D::Minus1, 0, 3)?, y.narrow(D::Minus1, 3, 3)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fit::{Dataset, FitConfig, fit};
    use crate::model::loss::gaussian_nll;
    use crate::nn::precision::Precision;

    fn tiny(dev: &Device) -> Mlp {
        Mlp::init(MlpConfig { n_in: 12, hidden: vec![16, 8], layer_norm: true, dropout: 0.1 }, 5, dev).unwrap()
    }

    fn random_rows(n: usize, width: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * width).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    fn eval(net: &Network, x: &Tensor) -> Vec<Vec<f32>> {
        net.forward(x, &mut Mode::Eval).unwrap().to_vec2().unwrap()
    }

    fn bits(p: &Params) -> Vec<(String, Vec<u32>)> {
        p.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|f| f.to_bits())
                        .collect(),
                )
            })
            .collect()
    }

    fn adapters(base: &Mlp, dev: &Device) -> Vec<Adapter> {
        let lora =
            LoraConfig { rank: 4, alpha: 8.0, layers: vec!["hidden.0".into(), "hidden.1".into(), "output".into()] };
        vec![
            Adapter::Full(Mlp { config: base.config.clone(), params: clone_params(&base.params).unwrap() }),
            Adapter::Lora(Lora::init(lora, &base.config, 3, dev).unwrap()),
            Adapter::ResHead(ResHead::init(ResHeadConfig { n_in: 8, hidden: 6 }, 3, dev).unwrap()),
        ]
    }

    #[test]
    fn adapters_start_exactly_at_the_zero_shot_prediction() {
        let dev = Device::Cpu;
        let base = tiny(&dev);
        let x = Tensor::from_vec(random_rows(50, 12, 1), (50, 12), &dev).unwrap();
        let zero_shot = eval(&Network { base: &base, adapter: &Adapter::ZeroShot }, &x);
        for a in adapters(&base, &dev) {
            assert_eq!(eval(&Network { base: &base, adapter: &a }, &x), zero_shot, "{} differs at step 0", a.kind());
        }
    }

    fn synthetic(n: usize, seed: u64) -> Dataset {
        let x = random_rows(n, 12, seed);
        let y = (0..n)
            .flat_map(|i| {
                let r = &x[i * 12..(i + 1) * 12];
                [r[0] + 0.5 * r[1], r[2] - r[3], 0.3 * r[4] + r[5] * 0.7]
            })
            .collect();
        Dataset { x, y, n_features: 12 }
    }

    #[test]
    fn adapting_moves_only_the_adapter_weights() {
        let dev = Device::Cpu;
        let base = tiny(&dev);
        let before = bits(&base.params);
        let cfg = FitConfig {
            learning_rate: 1e-2,
            weight_decay: 1e-4,
            batch_size: 32,
            max_epochs: 3,
            patience: 5,
            seed: 1,
            augment: None,
            balance_feh: false,
            precision: Precision::F32,
        };
        let bar = indicatif::ProgressBar::hidden();
        for a in adapters(&base, &dev) {
            let trainable = a.trainable().unwrap();
            let start = bits(trainable);
            fit(
                &Network { base: &base, adapter: &a },
                trainable,
                &synthetic(200, 2),
                &Dataset::default(),
                &cfg,
                &dev,
                &bar,
            )
            .unwrap();
            assert_eq!(bits(&base.params), before, "{} changed frozen base weights", a.kind());
            let end = bits(trainable);
            for ((name, s), (_, e)) in start.iter().zip(&end) {
                assert_ne!(s, e, "{}: trainable '{name}' did not move", a.kind());
            }
        }
    }

    #[test]
    fn every_trainable_weight_receives_a_gradient() {
        // candle's fused layer norm would silently cut the graph: this catches it.
        let dev = Device::Cpu;
        let base = tiny(&dev);
        let data = synthetic(64, 4);
        let x = Tensor::from_vec(data.x.clone(), (64, 12), &dev).unwrap();
        let y = Tensor::from_vec(data.y.clone(), (64, 3), &dev).unwrap();
        let pretrain = Adapter::Full(base.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // In bf16 (mixed precision) the gradient must cross the casts back to the f32 weights.
        for (a, dtype) in std::iter::once(pretrain)
            .chain(adapters(&base, &dev))
            .flat_map(|a| [(a.clone(), DType::F32), (a, DType::BF16)])
        {
            let net = Network { base: &base, adapter: &a };
            let out = net.forward(&x.to_dtype(dtype).unwrap(), &mut Mode::Train(&mut rng)).unwrap();
            let loss = gaussian_nll(&out.to_dtype(DType::F32).unwrap(), &y).unwrap();
            let grads = loss.backward().unwrap();
            for (name, v) in a.trainable().unwrap() {
                let g = grads.get(v).unwrap_or_else(|| panic!("{} {dtype:?}: no gradient for '{name}'", a.kind()));
                assert_eq!(g.dtype(), DType::F32, "{name}: the gradient of an f32 weight is f32");
                let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
                // Weights feeding a zero-initialised layer have an exactly zero gradient at step 0
                // (LoRA's A while B = 0, the residual head's first layer while its last is 0).
                if !name.ends_with("lora_a") && !name.starts_with("reshead.0") {
                    assert!(norm > 0.0, "{}: zero gradient for '{name}'", a.kind());
                }
            }
        }
    }

    #[test]
    fn lora_merged_into_the_weights_predicts_the_same() {
        let dev = Device::Cpu;
        let base = tiny(&dev);
        let cfg = LoraConfig { rank: 2, alpha: 4.0, layers: vec!["hidden.1".into(), "output".into()] };
        let lora = Lora::init(cfg, &base.config, 9, &dev).unwrap();
        for (k, v) in &lora.params {
            if k.ends_with("lora_b") {
                v.set(&Tensor::from_vec(random_rows(1, v.elem_count(), 4), v.shape(), &dev).unwrap()).unwrap();
            }
        }
        let x = Tensor::from_vec(random_rows(20, 12, 8), (20, 12), &dev).unwrap();
        let a = Adapter::Lora(lora.clone());
        let adapted = eval(&Network { base: &base, adapter: &a }, &x);
        let merged = lora.merged_into(&base).unwrap();
        let folded = eval(&Network { base: &merged, adapter: &Adapter::ZeroShot }, &x);
        for (r1, r2) in adapted.iter().zip(&folded) {
            for (u, v) in r1.iter().zip(r2) {
                assert!((u - v).abs() < 1e-4, "{u} vs {v}");
            }
        }
        assert_ne!(adapted, eval(&Network { base: &base, adapter: &Adapter::ZeroShot }, &x));
    }

    /// RMS error per parameter on validation, the fit's report and the dtype of the trained weights.
    fn learn_linear_label(precision: Precision) -> ([f32; 3], crate::model::fit::FitReport, Vec<DType>) {
        let dev = Device::Cpu;
        let cfg = MlpConfig { n_in: 12, hidden: vec![32], layer_norm: true, dropout: 0.0 };
        let model = Mlp::init(cfg, 1, &dev).unwrap();
        let (train, val) = (synthetic(2000, 11), synthetic(300, 12));
        let fit_cfg = FitConfig {
            learning_rate: 3e-3,
            weight_decay: 0.0,
            batch_size: 64,
            max_epochs: 60,
            patience: 10,
            seed: 2,
            augment: None,
            balance_feh: false,
            precision,
        };
        let trained = Adapter::Full(model.clone());
        let net = Network { base: &model, adapter: &trained };
        let report = fit(&net, &model.params, &train, &val, &fit_cfg, &dev, &indicatif::ProgressBar::hidden()).unwrap();
        let out = crate::model::predict::predict_standardized(&net, &val.x, 12, 512, &dev).unwrap();
        let rms = |p: usize| {
            (out.iter().enumerate().map(|(i, o)| (o[p] - val.y[i * 3 + p]).powi(2)).sum::<f32>() / out.len() as f32)
                .sqrt()
        };
        (std::array::from_fn(rms), report, model.params.values().map(|v| v.dtype()).collect())
    }

    #[test]
    fn a_tiny_model_learns_a_linear_label() {
        let (rms, report, _) = learn_linear_label(Precision::F32);
        // Label standard deviations are ~0.65, 0.82, 0.44; an untrained model is off by that much.
        for (p, r) in rms.iter().enumerate() {
            assert!(*r < 0.08, "parameter {p}: rms {r} after {} epochs", report.epochs_run);
        }
        assert!(report.best_val_loss.unwrap() < report.initial_val_loss.unwrap());
    }

    #[test]
    fn bf16_training_keeps_f32_weights_and_learns_as_well_as_f32() {
        let (rms32, _, _) = learn_linear_label(Precision::F32);
        let (rms16, report, dtypes) = learn_linear_label(Precision::Bf16);
        assert!(dtypes.iter().all(|d| *d == DType::F32), "master weights must stay f32: {dtypes:?}");
        // bf16 rounds each activation at ~0.4 %: the fit may be slightly worse, not broken.
        for (r16, r32) in rms16.iter().zip(&rms32) {
            assert!(*r16 < 0.1 && *r16 < 1.5 * r32 + 0.01, "bf16 {rms16:?}, f32 {rms32:?}");
        }
        assert!(report.best_val_loss.unwrap() < report.initial_val_loss.unwrap());
    }

    #[test]
    fn bf16_inference_stays_within_a_percent_of_f32() {
        // bf16 keeps 8 bits of mantissa: each op rounds at ~0.4 %. Outputs are in standardised
        // units (labels' σ): the bound |Δ| ≤ 0.015·(1 + |y|) is ~15 K in Teff near the mean.
        let dev = Device::Cpu;
        let base =
            Mlp::init(MlpConfig { n_in: 200, hidden: vec![64, 32], layer_norm: true, dropout: 0.0 }, 3, &dev).unwrap();
        let x = Tensor::from_vec(random_rows(40, 200, 2), (40, 200), &dev).unwrap();
        let head = ResHead::init(ResHeadConfig { n_in: 32, hidden: 8 }, 4, &dev).unwrap();
        // A trained head: its zero-initialised output layer would add nothing to compare.
        let w = &head.params["reshead.1.weight"];
        w.set(&Tensor::from_vec(random_rows(N_OUT, 8, 5), (N_OUT, 8), &dev).unwrap()).unwrap();
        for adapter in [Adapter::ZeroShot, Adapter::ResHead(head)] {
            let f32_out = eval(&Network { base: &base, adapter: &adapter }, &x);
            let (b16, a16) = (base.to_dtype(DType::BF16).unwrap(), adapter.to_dtype(DType::BF16).unwrap());
            let y = Network { base: &b16, adapter: &a16 }
                .forward(&x.to_dtype(DType::BF16).unwrap(), &mut Mode::Eval)
                .unwrap();
            assert_eq!(y.dtype(), DType::BF16, "the network computed in bf16");
            let y: Vec<Vec<f32>> = y.to_dtype(DType::F32).unwrap().to_vec2().unwrap();
            let worst = f32_out
                .iter()
                .flatten()
                .zip(y.iter().flatten())
                .map(|(a, b)| (a - b).abs() / (1.0 + a.abs()))
                .fold(0.0, f32::max);
            assert!(worst < 0.015 && worst > 0.0, "{} max |bf16 - f32| / (1 + |f32|) = {worst}", adapter.kind());
        }
    }
}
