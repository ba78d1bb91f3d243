//! Mock surveys from real stars (the `starpipe mock` stage): an empirical emulator fitted to the
//! MILES library, extended to the red, rendered into LAMOST and DESI files. The types both surveys
//! share (S/N distribution, deliberate damage, errors) live here.

mod air_vacuum;
pub mod desi;
mod emulator;
mod fits_bytes;
mod fits_cards;
mod fits_tables;
mod label_files;
pub mod labels;
pub mod lamost;
mod red_extension;
pub mod render;

pub use air_vacuum::{air_to_vacuum, vacuum_to_air};
pub use emulator::{Emulator, EmulatorError, REPORT_JSON};
pub use red_extension::{EXTENSION_END_VACUUM, PARAMETRIC_FROM_VACUUM, extend_to_red};

use rand::Rng;
use std::path::PathBuf;

/// What can be broken on purpose (`--corrupt-frac`), as robustness tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    Truncated,
    BadHeader,
    NanFlux,
    MissingHdu,
}

impl Corruption {
    pub fn as_str(self) -> &'static str {
        match self {
            Corruption::Truncated => "truncated",
            Corruption::BadHeader => "bad_header",
            Corruption::NanFlux => "nan_flux",
            Corruption::MissingHdu => "missing_hdu",
        }
    }
}

/// The S/N distribution of mock stars (in SNRG): log-uniform between two values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnrDistribution {
    pub min: f64,
    pub max: f64,
}

impl std::str::FromStr for SnrDistribution {
    type Err = String;
    /// `loguniform:MIN:MAX`, e.g. `loguniform:5:100`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["loguniform", lo, hi] => {
                let (min, max) =
                    (lo.parse::<f64>().map_err(|e| e.to_string())?, hi.parse::<f64>().map_err(|e| e.to_string())?);
                if min > 0.0 && max >= min { Ok(Self { min, max }) } else { Err(format!("'{s}': need 0 < MIN <= MAX")) }
            }
            _ => Err(format!("'{s}': expected loguniform:MIN:MAX")),
        }
    }
}

impl SnrDistribution {
    pub(crate) fn draw(&self, rng: &mut impl Rng) -> f64 {
        (self.min.ln() + (self.max.ln() - self.min.ln()) * rng.random::<f64>()).exp()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}
