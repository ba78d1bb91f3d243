//! Model and adapter directories on disk.
//!
//! ```text
//! MODEL/   model.safetensors    model-card.json
//! ADAPTER/ adapter.safetensors  adapter-card.json   (no weights for zero-shot)
//! ```
//! Files are written under a temporary name and renamed; the card is written last, so a directory
//! with a card is complete. Loading checks the weights against the hash in the card, and an
//! adapter against the hash of the base model it was trained on.

use super::card::{ADAPTER_FORMAT, AdapterCard, MODEL_FORMAT, ModelCard};
use super::mlp::{Adapter, Lora, Mlp, ResHead};
use super::{ModelError, Result};
use crate::nn::weights::{load_tensors, read_json, save_params, write_json};
use candle_core::{Device, Tensor};

use std::collections::BTreeMap;
use std::path::Path;

pub use crate::artifacts::layout::{ADAPTER_CARD, ADAPTER_WEIGHTS, MODEL_CARD, MODEL_WEIGHTS};

/// Saves a model; fills in `card.weights_sha256`.
pub fn save_model(dir: &Path, model: &Mlp, card: &mut ModelCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    card.weights_sha256 = save_params(&dir.join(MODEL_WEIGHTS), &model.params)?;
    Ok(write_json(&dir.join(MODEL_CARD), card)?)
}

/// The pixel window a model reads (from its card alone): where its reconstruction check ran.
pub fn model_window(dir: &Path) -> Result<crate::grid::LogGrid> {
    let card_path = dir.join(MODEL_CARD);
    let card: ModelCard = read_json(&card_path)?;
    match card.input {
        super::card::InputSpec::Pixels { window } => Ok(window),
        _ => Err(ModelError::bad(&card_path, "an embedding model reads no pixel window: give the pixel model")),
    }
}

pub fn load_model(dir: &Path, dev: &Device) -> Result<(Mlp, ModelCard)> {
    let card_path = dir.join(MODEL_CARD);
    let card: ModelCard = read_json(&card_path)?;
    if card.format != MODEL_FORMAT {
        return Err(ModelError::bad(&card_path, format!("format '{}' is not {MODEL_FORMAT}", card.format)));
    }
    let weights = dir.join(MODEL_WEIGHTS);
    let tensors = load_tensors(&weights, &card.weights_sha256, dev)?;
    let model = Mlp::from_tensors(card.architecture.clone(), tensors).map_err(|e| ModelError::bad(&weights, e))?;
    Ok((model, card))
}

/// Saves an adapter; fills in `card.weights_sha256` (None for zero-shot).
pub fn save_adapter(dir: &Path, adapter: &Adapter, card: &mut AdapterCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let weights = dir.join(ADAPTER_WEIGHTS);
    card.weights_sha256 = match adapter.trainable() {
        Some(params) => Some(save_params(&weights, params)?),
        None => {
            if weights.exists() {
                std::fs::remove_file(&weights).map_err(|e| ModelError::io(&weights, e))?;
            }
            None
        }
    };
    Ok(write_json(&dir.join(ADAPTER_CARD), card)?)
}

pub fn load_adapter(dir: &Path, base: &Mlp, base_card: &ModelCard, dev: &Device) -> Result<(Adapter, AdapterCard)> {
    let card_path = dir.join(ADAPTER_CARD);
    let card: AdapterCard = read_json(&card_path)?;
    if card.format != ADAPTER_FORMAT {
        return Err(ModelError::bad(&card_path, format!("format '{}' is not {ADAPTER_FORMAT}", card.format)));
    }
    if card.base_model_sha256 != base_card.weights_sha256 {
        return Err(ModelError::bad(
            &card_path,
            format!(
                "adapter was trained on base model {}, not on the given model {}",
                card.base_model_sha256, base_card.weights_sha256
            ),
        ));
    }
    let weights = dir.join(ADAPTER_WEIGHTS);
    let tensors = || -> Result<BTreeMap<String, Tensor>> {
        let sha = card.weights_sha256.as_deref().ok_or_else(|| ModelError::bad(&card_path, "no weights hash"))?;
        Ok(load_tensors(&weights, sha, dev)?)
    };
    let adapter = match card.kind.as_str() {
        "zeroshot" => Adapter::ZeroShot,
        "full" => {
            Adapter::Full(Mlp::from_tensors(base.config.clone(), tensors()?).map_err(|e| ModelError::bad(&weights, e))?)
        }
        "lora" => {
            let cfg =
                card.lora.clone().ok_or_else(|| ModelError::bad(&card_path, "lora adapter without lora settings"))?;
            Adapter::Lora(Lora::from_tensors(cfg, &base.config, tensors()?).map_err(|e| ModelError::bad(&weights, e))?)
        }
        "reshead" => {
            let cfg =
                card.reshead.clone().ok_or_else(|| ModelError::bad(&card_path, "reshead adapter without settings"))?;
            Adapter::ResHead(ResHead::from_tensors(cfg, tensors()?).map_err(|e| ModelError::bad(&weights, e))?)
        }
        other => return Err(ModelError::bad(&card_path, format!("unknown adapter kind '{other}'"))),
    };
    Ok((adapter, card))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSpec;
    use crate::model::card::{DataSource, InputSpec, LabelRange, LabelScaling, SelectionCuts, TrainingRecord};
    use crate::model::fit::{FitConfig, FitReport};
    use crate::model::mlp::{LoraConfig, MlpConfig};
    use crate::model::split::TestSplit;
    use crate::nn::params::Params;

    fn card(model: &Mlp) -> ModelCard {
        ModelCard {
            format: MODEL_FORMAT.into(),
            starpipe_version: crate::VERSION.into(),
            input: InputSpec::Pixels { window: crate::grid::LogGrid::lamost_window(338, 12) },
            architecture: model.config.clone(),
            n_parameters: model.n_parameters(),
            parameters: vec![],
            label_scaling: LabelScaling { mean: [5000.0, 3.0, -0.5], std: [800.0, 1.0, 0.4] },
            label_range: LabelRange::of(&[[4000.0, 1.0, -2.5], [7000.0, 5.0, 0.5]]),
            sigma_scale: [1.1, 0.9, 1.3],
            error_model: None,
            ood: None,
            training: TrainingRecord {
                source: DataSource::new(
                    &[],
                    &[std::path::PathBuf::from("labels.parquet")],
                    &LabelSpec::new("obsid"),
                    &SelectionCuts::default(),
                )
                .unwrap(),
                n_candidates: 0,
                n_train: 0,
                n_val: 0,
                data_sha256: String::new(),
                fit: FitConfig::pretraining(),
                report: FitReport::default(),
            },
            validation: vec![],
            weights_sha256: String::new(),
        }
    }

    fn bits(p: &Params) -> Vec<Vec<u32>> {
        p.values()
            .map(|v| {
                v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|f| f.to_bits()).collect()
            })
            .collect()
    }

    #[test]
    fn model_and_adapter_round_trip_bit_exactly() {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir().unwrap();
        let model =
            Mlp::init(MlpConfig { n_in: 12, hidden: vec![10, 6], layer_norm: true, dropout: 0.1 }, 3, &dev).unwrap();
        let mut c = card(&model);
        save_model(&dir.path().join("m"), &model, &mut c).unwrap();
        let (loaded, loaded_card) = load_model(&dir.path().join("m"), &dev).unwrap();
        assert_eq!(bits(&loaded.params), bits(&model.params));
        assert_eq!(loaded_card, c);
        // Saving again writes the same bytes: the hash is the model's identity.
        let mut c2 = card(&loaded);
        save_model(&dir.path().join("m2"), &loaded, &mut c2).unwrap();
        assert_eq!(c2.weights_sha256, c.weights_sha256);

        let lora =
            Lora::init(LoraConfig { rank: 2, alpha: 4.0, layers: vec!["hidden.1".into()] }, &model.config, 1, &dev)
                .unwrap();
        let adapter = Adapter::Lora(lora.clone());
        let mut ac = AdapterCard {
            format: ADAPTER_FORMAT.into(),
            starpipe_version: crate::VERSION.into(),
            kind: "lora".into(),
            base_model_sha256: c.weights_sha256.clone(),
            weights_sha256: None,
            lora: Some(lora.config.clone()),
            reshead: None,
            n_trainable_parameters: 0,
            sigma_scale: [1.0; 3],
            error_model: None,
            test_split: TestSplit::default(),
            n_train_requested: 10,
            training: None,
            validation: vec![],
        };
        save_adapter(&dir.path().join("a"), &adapter, &mut ac).unwrap();
        let (back, back_card) = load_adapter(&dir.path().join("a"), &loaded, &loaded_card, &dev).unwrap();
        let Adapter::Lora(back) = back else { panic!("not lora") };
        assert_eq!(bits(&back.params), bits(&lora.params));
        assert_eq!(back_card, ac);

        // An adapter refuses a base model it was not trained on.
        let other = Mlp::init(model.config.clone(), 4, &dev).unwrap();
        let mut oc = card(&other);
        save_model(&dir.path().join("other"), &other, &mut oc).unwrap();
        let err = load_adapter(&dir.path().join("a"), &other, &oc, &dev).unwrap_err().to_string();
        assert!(err.contains("trained on base model"), "{err}");

        // Tampered weights are detected.
        let w = dir.path().join("m").join(MODEL_WEIGHTS);
        let mut bytes = std::fs::read(&w).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&w, bytes).unwrap();
        assert!(load_model(&dir.path().join("m"), &dev).unwrap_err().to_string().contains("does not match the card"));
    }
}
