//! The spectral resolution a pixel model learned from, and the check that the shards it reads
//! have it. A network trained at LAMOST's R ≈ 1800 reads line depths and widths at that resolution;
//! DESI's native spectra (R ≈ 2000–5500) have deeper, narrower lines and bias every label, which
//! is why ingest can degrade DESI to R = 1800 (`--degrade-to-r`). Nothing stops a user from
//! forgetting it, so the training record keeps what the model saw and `infer` and `evaluate` warn.

use super::Result;
use crate::artifacts::metadata;
use crate::io::FileError;
use crate::schema::columns::normalized_spectra as ns;
use arrow::array::Array;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// LAMOST's resolving power: what a LAMOST shard is at unless ingest degraded it.
pub const LAMOST_R: f64 = 1800.0;

/// The resolution of a normalised-spectra shard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// An about constant resolving power R: LAMOST's own, or what ingest degraded DESI arms to.
    Constant(f64),
    /// DESI as observed: R ≈ 2000–5500, rising along each arm.
    DesiNative,
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolution::Constant(r) => write!(f, "R = {r:.0}"),
            Resolution::DesiNative => f.write_str("DESI's native resolution (R ≈ 2000–5500)"),
        }
    }
}

impl Resolution {
    /// Resolving powers within 5 % are one resolution (line widths differ by less than the
    /// spread of the instruments' own line-spread functions).
    fn matches(&self, other: &Resolution) -> bool {
        match (self, other) {
            (Resolution::Constant(a), Resolution::Constant(b)) => (a - b).abs() <= 0.05 * a.max(*b),
            (a, b) => a == b,
        }
    }
}

/// The preprocessing a spectra shard records (`starpipe.preprocess`); None for other shards, and
/// for a record this version cannot parse (a shard of another version keeps being read as it was).
fn preprocessing(shard: &Path) -> Result<Option<crate::preprocess::PreprocessConfig>> {
    let kv = crate::io::read_key_value_metadata(shard).map_err(|e| FileError::bad(shard, e))?;
    Ok(metadata::get(&kv, metadata::spectra::PREPROCESS).and_then(|v| serde_json::from_str(v).ok()))
}

/// The resolving power ingest degraded a shard's spectra to, if it did.
pub fn degraded_to_r(shard: &Path) -> Result<Option<f64>> {
    Ok(preprocessing(shard)?.and_then(|c| c.degrade_to_r))
}

/// The resolution of a spectra shard: what ingest degraded it to, else its survey's native one
/// (from the first row's `survey`). None for a shard that is not a spectra shard (embeddings do not
/// record what their spectra were at), has no rows, or is of an unknown survey.
pub fn shard_resolution(shard: &Path) -> Result<Option<Resolution>> {
    let Some(pre) = preprocessing(shard)? else { return Ok(None) };
    if let Some(r) = pre.degrade_to_r {
        return Ok(Some(Resolution::Constant(r)));
    }
    let arrow = |e| FileError::Arrow { path: shard.to_path_buf(), source: e };
    let file = std::fs::File::open(shard).map_err(|e| FileError::io(shard, e))?;
    let mut blocks = crate::io::read_columns(file, &[ns::SURVEY], 1)
        .map_err(|e| FileError::Parquet { path: shard.to_path_buf(), source: e })?;
    let Some(block) = blocks.next() else { return Ok(None) };
    let survey =
        arrow::compute::cast(block.map_err(arrow)?.column(0), &arrow::datatypes::DataType::Utf8).map_err(arrow)?;
    let survey = survey.as_any().downcast_ref::<arrow::array::StringArray>().filter(|s| !s.is_empty() && s.is_valid(0));
    Ok(match survey.map(|s| s.value(0).to_ascii_lowercase()).as_deref() {
        Some("lamost") => Some(Resolution::Constant(LAMOST_R)),
        Some("desi") => Some(Resolution::DesiNative),
        _ => None,
    })
}

/// The distinct resolutions of a model's training shards, in first-seen order (empty when none
/// is known, e.g. for embedding shards).
pub fn training_resolutions(shards: &[PathBuf]) -> Result<Vec<Resolution>> {
    let mut seen: Vec<Resolution> = Vec::new();
    for s in shards {
        if let Some(r) = shard_resolution(s)?
            && !seen.iter().any(|x| x.matches(&r))
        {
            seen.push(r);
        }
    }
    Ok(seen)
}

/// The resolutions of the shards that have one, read once per run for every check against it. A
/// shard that cannot be read is left to the stage, which reports it and goes on without it.
pub fn shard_resolutions(shards: &[PathBuf]) -> Vec<(&PathBuf, Resolution)> {
    shards
        .iter()
        .filter_map(|s| match shard_resolution(s) {
            Ok(r) => r.map(|r| (s, r)),
            Err(e) => {
                tracing::debug!("resolution check skips a shard: {e}");
                None
            }
        })
        .collect()
}

/// Warns when shards (`found`, of `n_shards` read) are at a resolution the model did not learn
/// from. `learned` empty (a card written before resolutions were recorded, or embeddings): no check.
pub fn warn_on_resolution_mismatch(
    found: &[(&PathBuf, Resolution)],
    n_shards: usize,
    learned: &[Resolution],
    model: &Path,
) {
    if learned.is_empty() {
        return;
    }
    let off: Vec<&(&PathBuf, Resolution)> =
        found.iter().filter(|(_, r)| !learned.iter().any(|l| l.matches(r))).collect();
    if let Some((first, r)) = off.first() {
        let names: Vec<String> = learned.iter().map(|l| l.to_string()).collect();
        let remedy = match learned.iter().find_map(|l| if let Resolution::Constant(r) = l { Some(*r) } else { None }) {
            Some(r) => format!("`ingest --degrade-to-r {r:.0}`"),
            None => "`ingest` without --degrade-to-r".into(),
        };
        tracing::warn!(
            "{} of {n_shards} shards (first: {}) are at {r}, but {} learned from spectra at {}: its labels will be \
             biased there. Ingest them at the model's resolution ({remedy}) or adapt the model to them (`finetune`).",
            off.len(),
            first.display(),
            model.display(),
            names.join(", "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolving_powers_within_five_percent_match_and_desi_native_matches_only_itself() {
        let (lamost, degraded) = (Resolution::Constant(1800.0), Resolution::Constant(1850.0));
        assert!(lamost.matches(&degraded));
        assert!(!lamost.matches(&Resolution::Constant(3000.0)));
        assert!(!lamost.matches(&Resolution::DesiNative));
        assert!(Resolution::DesiNative.matches(&Resolution::DesiNative));
        let json = serde_json::to_string(&[lamost, Resolution::DesiNative]).unwrap();
        assert_eq!(json, r#"[{"constant":1800.0},"desi_native"]"#);
    }
}
