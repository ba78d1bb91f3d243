//! The stellar parameters starpipe predicts, in output order.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parameter {
    Teff,
    Logg,
    Feh,
}

/// Output order of every model, prediction shard and metrics table.
pub const PARAMETERS: [Parameter; 3] = [Parameter::Teff, Parameter::Logg, Parameter::Feh];

impl Parameter {
    /// Column stem used in label tables, prediction shards and catalogs.
    pub fn name(self) -> &'static str {
        match self {
            Parameter::Teff => "teff",
            Parameter::Logg => "logg",
            Parameter::Feh => "feh",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Parameter::Teff => "K",
            Parameter::Logg => "log(cm.s**-2)",
            Parameter::Feh => "dex",
        }
    }

    /// |Δ| above which a prediction counts as an outlier (arXiv 2602.15021).
    pub fn outlier_threshold(self) -> f64 {
        match self {
            Parameter::Teff => 300.0,
            Parameter::Logg => 0.5,
            Parameter::Feh => 0.3,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
