//! Mock surveys from real stars (the `starpipe mock` stage): an empirical emulator fitted to the
//! MILES library, extended to the red, to be rendered into LAMOST and DESI files.

mod air_vacuum;
pub mod desi;
mod emulator;
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
