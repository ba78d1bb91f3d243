//! Gaussian negative log-likelihood on standardised labels.

use super::Result;
use super::mlp::split_output;
use candle_core::Tensor;

/// log σ is kept within [−7, 4] (σ from 0.001 to 55 label standard deviations): enough for any
/// honest uncertainty, and it keeps a single badly fitted star from sending the loss to −∞.
pub const LOG_SIGMA_MIN: f64 = -7.0;
pub const LOG_SIGMA_MAX: f64 = 4.0;

/// mean over stars and parameters of ½·((y − μ)/σ)² + log σ (constant dropped).
pub fn gaussian_nll(output: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (mu, log_sigma) = split_output(output)?;
    let log_sigma = log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)?;
    let z = ((y - mu)? * (log_sigma.neg()?.exp())?)?;
    Ok(((z.sqr()? * 0.5)? + log_sigma)?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn nll_matches_the_closed_form() {
        let dev = Device::Cpu;
        // One star, three parameters: μ = 0, log σ = ln 2, y = 1 → ½·(1/2)² + ln 2 per parameter.
        let out = Tensor::new(&[[0f32, 0., 0., 2f32.ln(), 2f32.ln(), 2f32.ln()]], &dev).unwrap();
        let y = Tensor::new(&[[1f32, 1., 1.]], &dev).unwrap();
        let v: f32 = gaussian_nll(&out, &y).unwrap().to_scalar().unwrap();
        assert!((v - (0.125 + 2f32.ln())).abs() < 1e-6, "{v}");
    }
}
