//! Cross-survey pairs for the contrastive objective: the crossmatch table read, pairs matched to
//! the loaded spectra, and their loss.

use super::network::{Encoder, contrastive_loss};
use super::tokens::TokenLayout;
use super::tokens::tokens_tensor;
use super::{EncoderError, Result};
use crate::nn::precision::Precision;
use crate::schema::columns::crossmatch;
use candle_core::{Device, Tensor, Var};
use std::path::{Path, PathBuf};

/// Pairs of loaded spectra (LAMOST row, DESI row) of one star each, from a crossmatch table.
pub(super) struct Pairs {
    pub(super) file: PathBuf,
    pub(super) train: Vec<(usize, usize)>,
    pub(super) val: Vec<(usize, usize)>,
}

/// The (obsid, TARGETID) pairs of a crossmatch table, read before any spectrum so a bad table
/// fails at once.
pub(super) fn read_crossmatch(path: &Path) -> Result<Vec<(i64, i64)>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Int64Type};
    let mut pairs = Vec::new();
    for b in &crate::labels::read_table(path)? {
        let column = |name: &str| -> Result<Vec<i64>> {
            let (i, _) = b.schema().column_with_name(name).ok_or_else(|| {
                EncoderError::bad(path, format!("no column '{name}' (a crossmatch needs obsid and targetid)"))
            })?;
            let c = arrow::compute::cast(b.column(i), &DataType::Int64)
                .map_err(|e| EncoderError::bad(path, format!("column '{name}': {e}")))?;
            Ok(c.as_primitive::<Int64Type>().iter().map(|v| v.unwrap_or(i64::MIN)).collect())
        };
        pairs.extend(column(crossmatch::OBSID)?.into_iter().zip(column(crossmatch::TARGETID)?));
    }
    Ok(pairs)
}

/// Keeps the crossmatch pairs whose two spectra are loaded (the first spectrum of each obsid and
/// TARGETID); validation pairs are chosen by a hash of the obsid.
pub(super) fn match_pairs(
    path: &Path,
    crossmatch: &[(i64, i64)],
    surveys: &[String],
    source_ids: &[i64],
    seed: u64,
    val_fraction: f64,
) -> Result<Pairs> {
    let mut row_of = std::collections::HashMap::new();
    for (i, (survey, id)) in surveys.iter().zip(source_ids).enumerate() {
        row_of.entry((survey.as_str() == "desi", *id)).or_insert(i);
    }
    let listed = crossmatch.len();
    let mut pairs: Vec<(i64, usize, usize)> = crossmatch
        .iter()
        .filter_map(|&(o, t)| Some((o, *row_of.get(&(false, o))?, *row_of.get(&(true, t))?)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    tracing::info!(listed, usable = pairs.len(), pairs = %path.display(), "crossmatch pairs with both spectra loaded");
    let (val, train): (Vec<_>, Vec<_>) =
        pairs.iter().partition(|(o, _, _)| id_hash(&o.to_string(), seed ^ 0x7A1) < val_fraction);
    if train.len() < 2 || val.len() < 2 {
        return Err(EncoderError::bad(
            path,
            format!(
                "{} of its {listed} pairs have both spectra in --spectra ({} train, {} validation): the \
                 contrastive objective needs at least 2 of each",
                pairs.len(),
                train.len(),
                val.len()
            ),
        ));
    }
    let rows = |v: Vec<&(i64, usize, usize)>| v.into_iter().map(|&(_, l, d)| (l, d)).collect();
    Ok(Pairs { file: path.to_path_buf(), train: rows(train), val: rows(val) })
}

/// The contrastive loss of a block of pairs, through the training path.
pub(super) fn pair_loss(
    enc: &Encoder,
    layout: &TokenLayout,
    features: &[f32],
    pairs: &[(usize, usize)],
    scale: &Var,
    precision: Precision,
    dev: &Device,
) -> Result<Tensor> {
    let (l, d): (Vec<usize>, Vec<usize>) = pairs.iter().copied().unzip();
    let tokens = |rows: &[usize]| -> Result<Tensor> {
        Ok(tokens_tensor(layout, features, rows, dev)?.to_dtype(precision.dtype())?)
    };
    let za = enc.embed_for_training(&tokens(&l)?)?;
    let zb = enc.embed_for_training(&tokens(&d)?)?;
    contrastive_loss(&za, &zb, scale.as_tensor())
}

pub(super) fn id_hash(id: &str, seed: u64) -> f64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest([id.as_bytes(), &seed.to_le_bytes()].concat());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64
}
