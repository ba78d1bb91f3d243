//! A labelled spectral library: the *observed* spectra of real stars with literature labels, which
//! `starpipe mock --library DIR` renders through the same instrument path as emulated stars, so
//! models can be scored on real spectra in survey formats.
//!
//! The directory holds (MILES as repacked in `data/miles/`, shipped with the repository, is exactly this):
//! - one or more `*.npz` files, each with `flux` (float32 [stars, pixels], any flux unit), an
//!   integer id array named `id` or `<something>_id` ([stars]), the wavelength in the rest frame as
//!   `wave_air` or `wave_vacuum` (float64 [pixels], Å; the name declares the medium) and
//!   `fwhm_angstrom` (the spectra's constant line-spread FWHM, Å). All files share one grid;
//! - one CSV whose name contains `params`, keyed by the same id column, with `teff` (K), `logg`
//!   (log(cm.s**-2)) and `feh` (dex). Stars without all three labels, or without a spectrum, are
//!   left out and counted by reason.
//!
//! Each spectrum is normalised to its mean over 4000–7000 Å (as the emulator is). Pixels with a
//! non-positive or non-finite flux are unusable: the spectrum is cut to its first and last usable
//! pixel (what it does not cover, a survey sees as masked) and isolated bad pixels inside are
//! interpolated (MILES has them only at the edges).

use super::MockError;
use super::air_vacuum::air_to_vacuum;
use super::labels::StarLabels;
use super::render::RestSpectrum;
use crate::labels::{LabelSpec, read_labels};
use candle_core::{DType, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Flux normalisation window, Å in the library's own medium (the emulator uses the same).
const NORM_WINDOW: (f64, f64) = (4000.0, 7000.0);

fn bad(path: &Path, message: impl Into<String>) -> MockError {
    MockError::Library { path: path.to_path_buf(), message: message.into() }
}

/// One library star: its id, literature labels and normalised flux over the pixels it covers.
#[derive(Debug, Clone)]
pub struct LibraryStar {
    pub id: i64,
    pub labels: StarLabels,
    /// First library pixel of `flux`.
    first: usize,
    flux: Vec<f32>,
}

/// A labelled library, its stars in id order.
#[derive(Debug, Clone)]
pub struct Library {
    pub dir: PathBuf,
    pub stars: Vec<LibraryStar>,
    /// Rest-frame vacuum wavelengths of the library pixels, Å.
    wave_vacuum: Vec<f64>,
    fwhm_angstrom: f64,
    /// Stars left out, by reason: (reason, count, example).
    pub left_out: Vec<(String, usize, String)>,
}

/// The arrays of one `.npz` file.
struct NpzFile {
    id_name: String,
    ids: Vec<i64>,
    flux: Vec<Vec<f32>>,
    wave: Vec<f64>,
    air: bool,
    fwhm: f64,
}

fn read_npz(path: &Path) -> Result<NpzFile, MockError> {
    let arrays: HashMap<String, Tensor> =
        Tensor::read_npz(path).map_err(|e| bad(path, format!("not a readable .npz: {e}")))?.into_iter().collect();
    let need = |name: &str| arrays.get(name).ok_or_else(|| bad(path, format!("no '{name}' array")));
    let (id_name, ids) = arrays
        .iter()
        .filter(|(n, _)| n.as_str() == "id" || n.ends_with("_id"))
        .min_by_key(|(n, _)| n.as_str())
        .ok_or_else(|| bad(path, "no id array ('id' or '<name>_id')"))?;
    let conv =
        |name: &str, t: &Tensor, dtype: DType| t.to_dtype(dtype).map_err(|e| bad(path, format!("'{name}': {e}")));
    let ids: Vec<i64> = conv(id_name, ids, DType::I64)?
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .map_err(|e| bad(path, format!("'{id_name}': {e}")))?;
    let (air, wave) = match (arrays.get("wave_air"), arrays.get("wave_vacuum")) {
        (Some(w), None) => (true, w),
        (None, Some(w)) => (false, w),
        _ => return Err(bad(path, "needs exactly one of 'wave_air' and 'wave_vacuum' (the medium)")),
    };
    let wave: Vec<f64> =
        conv("wave", wave, DType::F64)?.to_vec1().map_err(|e| bad(path, format!("wavelength: {e}")))?;
    let fwhm: f64 = conv("fwhm_angstrom", need("fwhm_angstrom")?, DType::F64)?
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| bad(path, format!("'fwhm_angstrom': {e}")))?
        .first()
        .copied()
        .ok_or_else(|| bad(path, "'fwhm_angstrom' is empty"))?;
    let flux: Vec<Vec<f32>> = conv("flux", need("flux")?, DType::F32)?
        .to_vec2()
        .map_err(|e| bad(path, format!("'flux' must be [stars, pixels]: {e}")))?;
    if flux.len() != ids.len() || flux.iter().any(|f| f.len() != wave.len()) {
        return Err(bad(
            path,
            format!(
                "'flux' is {}×{} but there are {} ids and {} wavelengths",
                flux.len(),
                flux.first().map_or(0, Vec::len),
                ids.len(),
                wave.len()
            ),
        ));
    }
    if !(fwhm.is_finite() && fwhm > 0.0) {
        return Err(bad(path, format!("'fwhm_angstrom' must be a positive number of Å, got {fwhm}")));
    }
    if wave.len() < 2 || wave.windows(2).any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater)) {
        return Err(bad(path, "the wavelengths must increase"));
    }
    Ok(NpzFile { id_name: id_name.clone(), ids, flux, wave, air, fwhm })
}

/// The usable part of a spectrum, normalised: None when nothing in the normalisation window is usable.
fn normalise(wave: &[f64], flux: &[f32]) -> Option<(usize, Vec<f32>)> {
    let usable = |f: f32| f.is_finite() && f > 0.0;
    let first = flux.iter().position(|&f| usable(f))?;
    let last = flux.iter().rposition(|&f| usable(f))?;
    let in_window: Vec<f64> = wave
        .iter()
        .zip(flux)
        .filter(|(w, f)| (NORM_WINDOW.0..=NORM_WINDOW.1).contains(*w) && usable(**f))
        .map(|(_, f)| *f as f64)
        .collect();
    if in_window.is_empty() {
        return None;
    }
    let mean = in_window.iter().sum::<f64>() / in_window.len() as f64;
    let mut out: Vec<f32> = flux[first..=last].iter().map(|&f| (f as f64 / mean) as f32).collect();
    // Interior bad pixels: linear interpolation between the usable neighbours.
    let mut k = 0;
    while k < out.len() {
        if usable(out[k]) {
            k += 1;
            continue;
        }
        let end = (k..out.len()).find(|&j| usable(out[j])).expect("the last pixel is usable");
        let (a, b) = (out[k - 1], out[end]);
        for (step, v) in out[k..end].iter_mut().enumerate() {
            let t = (step + 1) as f32 / (end - k + 1) as f32;
            *v = a + t * (b - a);
        }
        k = end;
    }
    Some((first, out))
}

impl Library {
    /// Reads a library directory (see the module documentation for its layout).
    pub fn open(dir: &Path) -> Result<Self, MockError> {
        let entries = std::fs::read_dir(dir).map_err(|e| bad(dir, format!("cannot read the directory: {e}")))?;
        let mut npz = Vec::new();
        let mut params = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if name.ends_with(".npz") {
                npz.push(path);
            } else if name.ends_with(".csv") && name.contains("params") {
                params.push(path);
            }
        }
        npz.sort();
        let params = match params.as_slice() {
            [one] => one.clone(),
            [] => return Err(bad(dir, "no parameter table (a .csv whose name contains 'params')")),
            _ => return Err(bad(dir, format!("{} parameter tables; keep one", params.len()))),
        };
        if npz.is_empty() {
            return Err(bad(dir, "no .npz spectra files"));
        }
        let files: Vec<NpzFile> = npz.iter().map(|p| read_npz(p)).collect::<Result<_, _>>()?;
        let grid = &files[0];
        for (f, p) in files.iter().zip(&npz).skip(1) {
            if f.wave != grid.wave || f.air != grid.air || f.fwhm != grid.fwhm || f.id_name != grid.id_name {
                return Err(bad(p, format!("its grid, resolution or id name differs from {}'s", npz[0].display())));
            }
        }
        // The id array's name is the key column of the parameter table.
        let spec = LabelSpec::new(&grid.id_name);
        let table = read_labels(&params, &spec).map_err(|e| bad(&params, e.to_string()))?;
        let mut left_out: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let mut note = |reason: &str, example: String| {
            let slot = left_out.entry(reason.to_string()).or_insert((0, example));
            slot.0 += 1;
        };
        // Unusable rows of the parameter table were logged by its reader; their stars show up
        // below as stars without labels.
        let mut stars = Vec::new();
        for f in &files {
            for (id, flux) in f.ids.iter().zip(&f.flux) {
                let Some(l) = table.get(*id) else {
                    note("no labels in the parameter table", format!("id {id}"));
                    continue;
                };
                let Some((first, flux)) = normalise(&f.wave, flux) else {
                    note("no usable flux in 4000–7000 Å", format!("id {id}"));
                    continue;
                };
                let labels = StarLabels { teff: l.values[0], logg: l.values[1], feh: l.values[2] };
                stars.push(LibraryStar { id: *id, labels, first, flux });
            }
        }
        stars.sort_by_key(|s| s.id);
        if let Some(w) = stars.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(bad(dir, format!("star id {} has two spectra", w[0].id)));
        }
        if stars.is_empty() {
            return Err(bad(dir, "no star has both a usable spectrum and three labels"));
        }
        let wave_vacuum =
            if grid.air { grid.wave.iter().map(|&w| air_to_vacuum(w)).collect() } else { grid.wave.clone() };
        let left_out = left_out.into_iter().map(|(r, (n, e))| (r, n, e)).collect();
        Ok(Library { dir: dir.to_path_buf(), stars, wave_vacuum, fwhm_angstrom: grid.fwhm, left_out })
    }

    /// Keeps only the stars whose ids are listed (e.g. one validation fold); unknown ids are returned.
    pub fn retain_ids(&mut self, ids: &[i64]) -> Vec<i64> {
        let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
        self.stars.retain(|s| wanted.contains(&s.id));
        let have: std::collections::HashSet<i64> = self.stars.iter().map(|s| s.id).collect();
        ids.iter().copied().filter(|i| !have.contains(i)).collect()
    }

    /// Star `k`'s spectrum at rest, vacuum wavelengths, over the pixels it covers.
    pub fn rest_spectrum(&self, k: usize) -> RestSpectrum {
        let s = &self.stars[k];
        RestSpectrum {
            wave: self.wave_vacuum[s.first..s.first + s.flux.len()].to_vec(),
            flux: s.flux.clone(),
            fwhm_angstrom: self.fwhm_angstrom,
        }
    }

    pub fn fwhm_angstrom(&self) -> f64 {
        self.fwhm_angstrom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_cuts_unusable_edges_and_bridges_inner_gaps() {
        let wave: Vec<f64> = (0..10).map(|i| 3990.0 + 2.0 * i as f64).collect();
        let flux = [0.0, f32::NAN, 2.0, 2.0, -1.0, 4.0, 4.0, 4.0, 0.0, 0.0];
        let (first, out) = normalise(&wave, &flux).unwrap();
        assert_eq!(first, 2);
        assert_eq!(out.len(), 6);
        // The mean of the usable pixels within 4000–7000 Å (4000, 4002, 4004 Å) sets the scale.
        let mean = 4.0;
        assert!((out[0] - 2.0 / mean).abs() < 1e-6);
        assert!((out[2] - 3.0 / mean).abs() < 1e-6, "the bad pixel is bridged: {}", out[2]);
        assert!(normalise(&wave, &[0.0; 10]).is_none());
    }
}
