//! AdamW with its state in the open, so a checkpoint can hold the moment estimates and a killed
//! run resumes bit for bit. The update is candle-nn 0.11's `AdamW`, operation for operation (a
//! test checks that both produce identical weights), since candle keeps its moments private.

use super::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// The optimiser's hyper-parameters (candle's defaults: β₁ 0.9, β₂ 0.999, ε 1e-8).
#[derive(Debug, Clone, Copy)]
pub struct AdamWParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWParams {
    pub fn new(lr: f64, weight_decay: f64) -> Self {
        AdamWParams { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }
}

/// Decoupled-weight-decay Adam over a fixed list of variables.
pub struct AdamW {
    vars: Vec<Var>,
    first: Vec<Var>,
    second: Vec<Var>,
    step_t: usize,
    params: AdamWParams,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, params: AdamWParams) -> Result<Self> {
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let zeros = |v: &Var| Var::zeros(v.shape(), v.dtype(), v.device());
        let first = vars.iter().map(zeros).collect::<candle_core::Result<Vec<_>>>()?;
        let second = vars.iter().map(zeros).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(AdamW { vars, first, second, step_t: 0, params })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let AdamWParams { lr, beta1, beta2, eps, weight_decay } = self.params;
        let lr_lambda = lr * weight_decay;
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        for ((theta, m), v) in self.vars.iter().zip(&self.first).zip(&self.second) {
            if let Some(g) = grads.get(theta) {
                let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
                let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                let m_hat = (&next_m * scale_m)?;
                let v_hat = (&next_v * scale_v)?;
                let next_theta = (theta.as_tensor() * (1f64 - lr_lambda))?;
                let adjusted_grad = (m_hat / (v_hat.sqrt()? + eps)?)?;
                let next_theta = (next_theta - (adjusted_grad * lr)?)?;
                m.set(&next_m)?;
                v.set(&next_v)?;
                theta.set(&next_theta)?;
            }
        }
        Ok(())
    }

    /// Steps taken and the moment estimates (first, second) per variable, in order.
    pub fn state(&self) -> (usize, Vec<(Tensor, Tensor)>) {
        let moments = self.first.iter().zip(&self.second).map(|(m, v)| (m.as_tensor().clone(), v.as_tensor().clone()));
        (self.step_t, moments.collect())
    }

    /// Puts back a state from [`AdamW::state`]; shapes must match the variables.
    pub fn restore(&mut self, step_t: usize, moments: &[(Tensor, Tensor)]) -> Result<()> {
        if moments.len() != self.vars.len() {
            return Err(candle_core::Error::Msg(format!(
                "optimiser state for {} variables, the network has {}",
                moments.len(),
                self.vars.len()
            ))
            .into());
        }
        for ((m, v), (sm, sv)) in self.first.iter().zip(&self.second).zip(moments) {
            m.set(sm)?;
            v.set(sv)?;
        }
        self.step_t = step_t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::Optimizer;

    fn problem() -> (Var, Tensor) {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[[0.3f32, -1.2, 0.7], [2.0, 0.1, -0.4]], &dev).unwrap()).unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0], [-0.5, 0.25], [3.0, -1.0]], &dev).unwrap();
        (w, x)
    }

    fn loss(w: &Var, x: &Tensor) -> Tensor {
        w.as_tensor().matmul(x).unwrap().sqr().unwrap().sum_all().unwrap()
    }

    #[test]
    fn same_updates_as_candle_and_resumes_exactly() {
        let (ours_w, x) = problem();
        let (theirs_w, _) = problem();
        let mut ours = AdamW::new(vec![ours_w.clone()], AdamWParams::new(0.05, 0.01)).unwrap();
        let cp = candle_nn::ParamsAdamW { lr: 0.05, weight_decay: 0.01, ..Default::default() };
        let mut theirs = candle_nn::AdamW::new(vec![theirs_w.clone()], cp).unwrap();
        for step in 0..20 {
            let lr = 0.05 * (1.0 - step as f64 / 40.0);
            ours.set_learning_rate(lr);
            theirs.set_learning_rate(lr);
            ours.backward_step(&loss(&ours_w, &x)).unwrap();
            theirs.backward_step(&loss(&theirs_w, &x)).unwrap();
        }
        let (a, b) = (ours_w.as_tensor().to_vec2::<f32>().unwrap(), theirs_w.as_tensor().to_vec2::<f32>().unwrap());
        assert_eq!(a, b, "bit-identical to candle-nn's AdamW");

        // Stop after 10 steps, carry the state over, go on: the same weights as 20 steps in one go.
        let (w1, _) = problem();
        let mut first = AdamW::new(vec![w1.clone()], AdamWParams::new(0.05, 0.01)).unwrap();
        for step in 0..10 {
            first.set_learning_rate(0.05 * (1.0 - step as f64 / 40.0));
            first.backward_step(&loss(&w1, &x)).unwrap();
        }
        let (t, moments) = first.state();
        let w2 = Var::from_tensor(&w1.as_tensor().copy().unwrap()).unwrap();
        let mut second = AdamW::new(vec![w2.clone()], AdamWParams::new(0.05, 0.01)).unwrap();
        let copies: Vec<(Tensor, Tensor)> =
            moments.iter().map(|(m, v)| (m.copy().unwrap(), v.copy().unwrap())).collect();
        second.restore(t, &copies).unwrap();
        for step in 10..20 {
            second.set_learning_rate(0.05 * (1.0 - step as f64 / 40.0));
            second.backward_step(&loss(&w2, &x)).unwrap();
        }
        assert_eq!(w2.as_tensor().to_vec2::<f32>().unwrap(), a);
        assert_eq!(w2.dtype(), DType::F32);
    }
}
