//! Named weight sets: creating them from a plan (seeded), adopting loaded tensors, copies and
//! snapshots. Every network (the MLP and its adapters, the encoder) keeps its weights this way,
//! so one optimiser and one weights file format serve them all.

use super::Result;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Named weights; names are stable and are the keys of the safetensors files.
pub type Params = BTreeMap<String, Var>;

/// How a named weight starts: drawn uniformly from (−b, b) or filled with a constant.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Uniform(f64),
    Const(f32),
}

/// A network's weights: names, shapes and initialisation, in the order the random stream is drawn.
/// One plan serves both creating a network and checking loaded weights, so loading never has to
/// initialise a throw-away network to learn the expected shapes.
pub type WeightPlan = Vec<(String, Vec<usize>, Init)>;

/// Fresh weights following the plan, drawing uniform ones from `rng` in plan order.
pub fn materialize(plan: &WeightPlan, rng: &mut ChaCha8Rng, dev: &Device) -> Result<Params> {
    let mut params = Params::new();
    for (name, shape, init) in plan {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = match *init {
            Init::Uniform(b) => (0..n).map(|_| rng.random_range(-b..b) as f32).collect(),
            Init::Const(c) => vec![c; n],
        };
        params.insert(name.clone(), Var::from_vec(v, shape.as_slice(), dev)?);
    }
    Ok(params)
}

/// Loaded tensors as the plan's weights: exactly its names, with its shapes, in f32.
pub fn adopt(plan: &WeightPlan, tensors: BTreeMap<String, Tensor>) -> std::result::Result<Params, String> {
    let mut params = Params::new();
    for (name, shape, _) in plan {
        let t = tensors.get(name).ok_or_else(|| format!("weights lack tensor '{name}'"))?;
        if t.dims() != shape.as_slice() || t.dtype() != DType::F32 {
            return Err(format!("tensor '{name}' is {:?} {:?}, expected {shape:?} F32", t.dims(), t.dtype()));
        }
        params.insert(name.clone(), Var::from_tensor(t).map_err(|e| e.to_string())?);
    }
    if let Some(extra) = tensors.keys().find(|k| !params.contains_key(*k)) {
        return Err(format!("unexpected tensor '{extra}' for this architecture"));
    }
    Ok(params)
}

/// Deep copy: new storage, so training the copy leaves the original untouched.
pub fn clone_params(p: &Params) -> Result<Params> {
    p.iter().map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.as_tensor().copy()?)?))).collect()
}

/// The trainable variables of a set, in name order (deterministic optimiser state).
pub fn vars(p: &Params) -> Vec<Var> {
    p.values().cloned().collect()
}

/// Snapshot of a set's values (for early stopping) and its restoration.
pub fn snapshot(p: &Params) -> Result<Vec<Tensor>> {
    p.values().map(|v| Ok(v.as_tensor().copy()?)).collect()
}
pub fn restore(p: &Params, snap: &[Tensor]) -> Result<()> {
    for (v, t) in p.values().zip(snap) {
        v.set(t)?;
    }
    Ok(())
}

/// A copy of a weight set in another dtype (bf16 inference); the original stays as it is.
pub fn cast(p: &Params, dtype: DType) -> Result<Params> {
    p.iter().map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.as_tensor().to_dtype(dtype)?)?))).collect()
}
