//! Batched prediction: standardised network outputs → physical labels with calibrated 1σ errors.

use super::Result;
use super::card::{ErrorModel, LabelScaling};
use super::loss::{LOG_SIGMA_MAX, LOG_SIGMA_MIN};
use super::mlp::{Mlp, Mode, Network};
use candle_core::{Device, Tensor};

/// Raw outputs ([μ; log σ] per row, standardised units) for a row-major feature matrix.
pub fn predict_standardized(
    net: &Network,
    x: &[f32],
    n_features: usize,
    batch: usize,
    dev: &Device,
) -> Result<Vec<[f32; 6]>> {
    let n = x.len().checked_div(n_features).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        out.extend(predict_batch(net, x[start * n_features..end * n_features].to_vec(), n_features, dev)?);
    }
    Ok(out)
}

/// The base network's last-hidden-layer features (rows × width), for out-of-distribution scores.
pub fn hidden_features(base: &Mlp, x: &[f32], n_features: usize, batch: usize, dev: &Device) -> Result<Vec<f32>> {
    let n = x.len().checked_div(n_features).unwrap_or(0);
    let mut out = Vec::with_capacity(n * base.config.last_hidden());
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let t = Tensor::from_slice(&x[start * n_features..end * n_features], (end - start, n_features), dev)?;
        let (_, h) = base.forward_with_hidden(&t, true, None, &mut Mode::Eval)?;
        out.extend(h.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// One network call on a feature matrix it takes over (no copy on the CPU).
pub fn predict_batch(net: &Network, x: Vec<f32>, n_features: usize, dev: &Device) -> Result<Vec<[f32; 6]>> {
    let rows = x.len() / n_features.max(1);
    let t = Tensor::from_vec(x, (rows, n_features), dev)?;
    output_rows(&net.forward(&t, &mut Mode::Eval)?)
}

/// An [N, 6] network output as rows on the host.
pub fn output_rows(y: &Tensor) -> Result<Vec<[f32; 6]>> {
    let y = y.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(y.chunks_exact(6).map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]]).collect())
}

/// A prediction in physical units: (mean, 1σ) for Teff, log g, [Fe/H].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: [f64; 3],
    pub error: [f64; 3],
}

/// Undoes the label standardisation and applies the error model (σ factors, and a floor and an
/// S/N term where they were fitted) for a spectrum of median S/N `snr` per pixel.
pub fn to_physical(raw: &[f32; 6], scaling: &LabelScaling, errors: &ErrorModel, snr: f32) -> Estimate {
    let mut e = Estimate { value: [0.0; 3], error: [0.0; 3] };
    let sigma_net = network_sigma(raw, scaling);
    for p in 0..3 {
        e.value[p] = raw[p] as f64 * scaling.std[p] + scaling.mean[p];
        e.error[p] = errors.error(p, sigma_net[p], f64::from(snr));
    }
    e
}

/// The network's own σ in physical units, before any calibration.
pub fn network_sigma(raw: &[f32; 6], scaling: &LabelScaling) -> [f64; 3] {
    [0, 1, 2].map(|p| (raw[p + 3] as f64).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX).exp() * scaling.std[p])
}

#[cfg(test)]
mod physical_tests {
    use super::*;

    #[test]
    fn errors_are_raw_sigma_times_the_label_scale_times_the_calibration_factor() {
        let scaling = LabelScaling { mean: [5000.0, 4.0, -0.3], std: [800.0, 0.9, 0.4] };
        let raw = [0.5f32, -1.0, 0.0, 0.0, (0.5f32).ln(), 1.0];
        let e = to_physical(&raw, &scaling, &ErrorModel::scale_only([1.5, 2.0, 1.0]), 30.0);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-5 * b.abs().max(1.0);
        assert!(close(e.value[0], 5400.0) && close(e.value[1], 3.1) && close(e.value[2], -0.3), "{e:?}");
        assert!(close(e.error[0], 800.0 * 1.5), "{e:?}");
        assert!(close(e.error[1], 0.9 * 0.5 * 2.0), "{e:?}");
        assert!(close(e.error[2], 0.4 * std::f64::consts::E), "{e:?}");
        // A floor adds in quadrature.
        let floored = ErrorModel { scale: [1.5, 2.0, 1.0], floor: [900.0, 0.0, 1.0], snr_term: [0.0; 3] };
        let f = to_physical(&raw, &scaling, &floored, 30.0);
        assert!(
            close(f.error[0], 1500.0)
                && close(f.error[1], 0.9)
                && close(f.error[2], (0.4f64 * std::f64::consts::E).hypot(1.0)),
            "{f:?}"
        );
        assert_eq!(f.value, e.value);
    }

    #[test]
    fn the_snr_term_adds_in_quadrature_and_falls_as_one_over_snr() {
        let scaling = LabelScaling { mean: [5000.0, 4.0, -0.3], std: [800.0, 0.9, 0.4] };
        let raw = [0.0f32, 0.0, 0.0, (0.1f32).ln(), (0.1f32).ln(), (0.1f32).ln()];
        let model = ErrorModel { scale: [1.0; 3], floor: [60.0, 0.0, 0.0], snr_term: [800.0, 0.0, 1.2] };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4 * b.abs().max(1.0);
        let at = |snr: f32| to_physical(&raw, &scaling, &model, snr).error;
        // Teff: network 80 K, floor 60 K, 800/snr.
        assert!(close(at(10.0)[0], (80.0f64.powi(2) + 60.0f64.powi(2) + 80.0f64.powi(2)).sqrt()), "{:?}", at(10.0));
        assert!(close(at(40.0)[0], (80.0f64.powi(2) + 60.0f64.powi(2) + 20.0f64.powi(2)).sqrt()), "{:?}", at(40.0));
        // log g has no term: the same σ at every S/N; [Fe/H] grows toward low S/N.
        assert!(close(at(5.0)[1], 0.09) && close(at(100.0)[1], 0.09));
        assert!(close(at(4.0)[2], 0.04f64.hypot(0.3)) && at(4.0)[2] > at(20.0)[2]);
        // A spectrum without an S/N gets no term.
        assert!(close(at(f32::NAN)[0], 100.0) && close(at(0.0)[0], 100.0));
    }
}
