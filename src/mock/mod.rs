//! Mock surveys from real stars (the `starpipe mock` stage): an empirical emulator fitted to the
//! MILES library, extended to the red, or the observed spectra of a labelled library, rendered
//! into LAMOST and DESI files. The types both surveys share (what the stars are made of, S/N
//! distribution, deliberate damage, errors) live here.

mod air_vacuum;
pub mod builtin_library;
pub mod desi;
mod emulator;
mod fits_tables;
mod label_files;
pub mod labels;
pub mod lamost;
pub mod library;
mod red_extension;
pub mod render;
pub mod run;

pub use air_vacuum::{air_to_vacuum, vacuum_to_air};
pub use emulator::{Emulator, REPORT_JSON, report_text as emulator_report_text};
pub use library::Library;
pub use red_extension::{EXTENSION_END_VACUUM, PARAMETRIC_FROM_VACUUM, extend_to_red};

use labels::{LabelRange, StarLabels, draw_star};
use rand::Rng;
use render::RestSpectrum;
use std::path::PathBuf;

/// What a mock's stars are made of.
#[derive(Clone, Copy)]
pub enum Stars<'a> {
    /// Labels drawn from the Milky Way-like mix, spectra from this emulator.
    Emulated(&'a Emulator),
    /// The observed spectra of a labelled library: render `i` is library star `i % stars`, so
    /// each star appears `repeats` times with its own S/N, radial velocity and calibration.
    Library { library: &'a Library, repeats: usize },
}

impl Stars<'static> {
    /// Emulated stars from the emulator compiled into starpipe.
    pub fn builtin() -> Self {
        Stars::Emulated(Emulator::builtin())
    }
}

impl Stars<'_> {
    /// How many stars to render when the user asked for `n` (a library renders itself `repeats` times).
    pub fn count(&self, n: usize) -> usize {
        match self {
            Stars::Emulated(_) => n,
            Stars::Library { library, repeats } => library.stars.len() * repeats,
        }
    }

    /// Labels of render `i` (drawn from `rng` for emulated stars) and its library star id.
    fn labels(&self, i: usize, rng: &mut impl Rng) -> (StarLabels, Option<i64>) {
        match self {
            Stars::Emulated(_) => (draw_star(rng, LabelRange::default()), None),
            Stars::Library { library, .. } => {
                let s = &library.stars[i % library.stars.len()];
                (s.labels, Some(s.id))
            }
        }
    }

    /// Render `i`'s spectrum at rest, reaching at least `end` Å where the source can.
    fn rest_spectrum(&self, i: usize, labels: &StarLabels, end: f64) -> RestSpectrum {
        match self {
            Stars::Emulated(e) => RestSpectrum::emulated(e, labels, end),
            Stars::Library { library, .. } => library.rest_spectrum(i % library.stars.len()),
        }
    }

    fn is_library(&self) -> bool {
        matches!(self, Stars::Library { .. })
    }
}

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
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(transparent)]
    File(#[from] crate::io::WriteError),
    #[error("spectral library {path}: {message}")]
    Library { path: PathBuf, message: String },
    #[error("library id list {path}: {message}")]
    IdList { path: PathBuf, message: String },
    #[error("emulator coefficients are unreadable: {0}")]
    Emulator(String),
    #[error("{0}")]
    Invalid(String),
}
