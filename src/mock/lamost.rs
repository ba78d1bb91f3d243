//! Mock LAMOST LRS files: one star per file, in both real layouts (5×N primary image; empty
//! primary + COADD table), some gzip'd, with the full header keyword set of real files, plus a label
//! catalogue keyed by OBSID.

use super::labels::StarLabels;
use super::render::{add_noise, band_snr, calibration_error, instrument_sample, rest_frame_end};
pub use super::{Corruption, MockError, SnrDistribution, Stars};
use crate::fits::cards::{CardValue, fill_template};
use crate::grid::LogGrid;
use crate::preprocess::C_KMS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const IMAGE_LAYOUT_CARDS: &str = include_str!("../../data/mock/lamost_primary_image_layout.cards");
const COADD_LAYOUT_CARDS: &str = include_str!("../../data/mock/lamost_primary_coadd_layout.cards");
/// LAMOST's resolving power.
pub const LAMOST_R: f64 = 1800.0;
/// Pixel counts seen in real LAMOST files, with how often the mock uses each.
const NPIX_CHOICES: [(usize, f64); 4] = [(3909, 0.5), (3908, 0.2), (3906, 0.1), (3902, 0.2)];
/// First OBSID of mock stars: far above the real ones (≤ 1.25e9), so the two never collide.
pub const MOCK_OBSID_BASE: i64 = 9_000_000_000;
/// First OBSID of library renders (`mock --library`): apart from emulated mocks, so the label
/// tables of both can be joined into one training set.
pub const LIBRARY_OBSID_BASE: i64 = 8_000_000_000;
/// Share of files written gzip'd (as some LAMOST releases ship them); compressing is a sixth of a
/// file's cost, so the mix is kept to what tests of both paths need.
const GZIP_FRACTION: f64 = 0.25;

/// One mock star as the label catalogue records it.
#[derive(Debug, Clone, PartialEq)]
pub struct MockStar {
    pub obsid: i64,
    pub file: String,
    pub layout: &'static str,
    pub gzip: bool,
    pub npix: usize,
    pub truth: StarLabels,
    /// The library star rendered (`mock --library`), None for emulated stars.
    pub library_id: Option<i64>,
    pub rv_kms: f64,
    pub snr_g: f64,
    /// Catalogue-style labels: truth plus an error drawn from the stated uncertainty (library
    /// stars: the literature labels, error unknown = NaN).
    pub catalog: StarLabels,
    pub catalog_err: StarLabels,
    pub corruption: Option<Corruption>,
}

fn subclass(teff: f64, logg: f64) -> String {
    let (letter, lo, hi) = match teff {
        t if t >= 30000.0 => ("O", 30000.0, 50000.0),
        t if t >= 10000.0 => ("B", 10000.0, 30000.0),
        t if t >= 7300.0 => ("A", 7300.0, 10000.0),
        t if t >= 6000.0 => ("F", 6000.0, 7300.0),
        t if t >= 5300.0 => ("G", 5300.0, 6000.0),
        t if t >= 3900.0 => ("K", 3900.0, 5300.0),
        _ => ("M", 2400.0, 3900.0),
    };
    let sub = (9.0 * (hi - teff) / (hi - lo)).round().clamp(0.0, 9.0) as u32;
    if letter == "M" && logg > 4.0 { format!("dM{sub}") } else { format!("{letter}{sub}") }
}

/// Pixel centres and edges of the LAMOST grid for each pixel count, computed once.
fn lamost_grid(npix: usize) -> (&'static [f64], &'static [f64]) {
    /// (pixel count, centres, edges) per choice of pixel count.
    type Grids = Vec<(usize, Vec<f64>, Vec<f64>)>;
    static GRIDS: std::sync::OnceLock<Grids> = std::sync::OnceLock::new();
    let grids = GRIDS.get_or_init(|| {
        NPIX_CHOICES
            .iter()
            .map(|&(n, _)| (n, LogGrid::lamost_window(0, n).wavelengths(), LogGrid::lamost_window(0, n).edges()))
            .collect()
    });
    let (_, w, e) = grids.iter().find(|(n, _, _)| *n == npix).expect("npix is one of NPIX_CHOICES");
    (w, e)
}

/// Per-pixel S/N profile for a SNRG: LAMOST is weak in the blue, dips at the dichroic.
fn snr_profile(wave: &[f64], snr_g: f64) -> Vec<f64> {
    wave.iter()
        .map(|&w| {
            let blue = ((w - 3650.0) / 1100.0).clamp(0.08, 1.0);
            let red =
                1.0 + 0.8 * ((w - 5000.0) / 2500.0).clamp(0.0, 1.0) - 0.5 * ((w - 8500.0) / 600.0).clamp(0.0, 1.0);
            let dichroic = if (5700.0..5950.0).contains(&w) { 0.6 } else { 1.0 };
            snr_g * blue * red * dichroic
        })
        .collect()
}

/// Draws and renders star `i` of a mock with `seed`; returns its catalogue row and file contents.
fn make_star(stars: Stars, seed: u64, i: usize, snr: SnrDistribution, corrupt_frac: f64) -> (MockStar, LamostData) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(i as u64);
    let (truth, library_id) = stars.labels(i, &mut rng);
    let rv_sd = if truth.feh < -1.0 { 120.0 } else { 35.0 };
    let rv_kms = rv_sd * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng);
    let mut u: f64 = rng.random();
    let npix = NPIX_CHOICES
        .iter()
        .find(|(_, p)| {
            u -= p;
            u < 0.0
        })
        .map_or(3909, |(n, _)| *n);
    let mut layout = if rng.random::<f64>() < 0.3 { "image" } else { "coadd" };
    let gzip = rng.random::<f64>() < GZIP_FRACTION;
    let snr_g = snr.draw(&mut rng);
    let corruption = (rng.random::<f64>() < corrupt_frac).then(|| match rng.random_range(0..4) {
        0 => Corruption::Truncated,
        1 => Corruption::BadHeader,
        2 => Corruption::NanFlux,
        _ => Corruption::MissingHdu,
    });
    if corruption == Some(Corruption::MissingHdu) {
        layout = "coadd"; // the data HDU that goes missing is the COADD table
    }

    let (wave, edges) = lamost_grid(npix);
    let rest = stars.rest_spectrum(i, &truth, rest_frame_end(edges[edges.len() - 1]));
    let mut flux = instrument_sample(&rest, rv_kms, LAMOST_R, edges);
    let response = calibration_error(&mut rng, wave, 0.12);
    let brightness = 300.0 * 10f64.powf(rng.random_range(-0.5..0.5));
    for (f, r) in flux.iter_mut().zip(&response) {
        *f = (*f as f64 * r * brightness) as f32;
    }
    let median = {
        let mut v: Vec<f32> = flux.clone();
        let mid = v.len() / 2;
        *v.select_nth_unstable_by(mid, f32::total_cmp).1 as f64
    };
    let (mut flux, mut ivar) = add_noise(&mut rng, &flux, &snr_profile(wave, snr_g), 0.01 * median);
    // A few bad pixels, flagged the LAMOST way (ORMASK set, ivar 0).
    let mut ormask = vec![0f32; npix];
    for _ in 0..rng.random_range(0..25) {
        let j = rng.random_range(0..npix);
        ormask[j] = 1.0;
        ivar[j] = 0.0;
    }
    if corruption == Some(Corruption::NanFlux) {
        flux.iter_mut().for_each(|f| *f = f32::NAN);
    }
    let snr_bands = [(3700.0, 4000.0), (4000.0, 5500.0), (5500.0, 6900.0), (6900.0, 8400.0), (8400.0, 9100.0)]
        .map(|(lo, hi)| band_snr(wave, &flux, &ivar, lo, hi));
    // Catalogue errors like a survey's: they shrink with S/N to a floor.
    let scale = (30.0 / snr_g.max(1.0)).clamp(0.4, 6.0);
    let err = StarLabels { teff: 45.0 * scale, logg: 0.07 * scale, feh: 0.05 * scale };
    let normal = |rng: &mut ChaCha8Rng| rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, rng);
    let (catalog, err) = if library_id.is_some() {
        (truth, StarLabels { teff: f64::NAN, logg: f64::NAN, feh: f64::NAN })
    } else {
        let catalog = StarLabels {
            teff: truth.teff + err.teff * normal(&mut rng),
            logg: truth.logg + err.logg * normal(&mut rng),
            feh: truth.feh + err.feh * normal(&mut rng),
        };
        (catalog, err)
    };
    let obsid = if library_id.is_some() { LIBRARY_OBSID_BASE } else { MOCK_OBSID_BASE } + i as i64;
    let (sp, fiber) = (1 + i % 16, 1 + (i / 16) % 250);
    let lmjd = 56000 + (i / 4000) as i64;
    let plan = format!("MOCK{:05}", i / 4000);
    let name = format!("spec-{lmjd}-{plan}_sp{sp:02}-{fiber:03}.fits");
    let file = if gzip { format!("{name}.gz") } else { name.clone() };
    let ra = 360.0 * rng.random::<f64>();
    let dec = (rng.random_range(-0.17..0.87f64)).asin().to_degrees();
    let z = rv_kms / C_KMS;
    let star = MockStar {
        obsid,
        file: file.clone(),
        layout,
        gzip,
        npix,
        truth,
        library_id,
        rv_kms,
        snr_g: snr_bands[1],
        catalog,
        catalog_err: err,
        corruption,
    };
    let header = HashMap::from([
        ("FILENAME", CardValue::Str(name)),
        ("OBSID", CardValue::Int(obsid)),
        ("DATA_V", CardValue::Str("LAMOST MOCK".into())),
        ("AUTHOR", CardValue::Str(format!("starpipe {} mock (seed {seed})", crate::VERSION))),
        ("NORM", CardValue::Int(0)),
        ("LMJD", CardValue::Int(lmjd)),
        ("MJD", CardValue::Int(lmjd - 1)),
        ("PLANID", CardValue::Str(plan)),
        ("RA", CardValue::Float(ra, 6)),
        ("DEC", CardValue::Float(dec, 6)),
        ("RA_OBS", CardValue::Float(ra, 6)),
        ("DEC_OBS", CardValue::Float(dec, 6)),
        ("DESIG", CardValue::Str(format!("LAMOST MOCK{obsid}"))),
        ("FIBERID", CardValue::Int(fiber as i64)),
        ("SPID", CardValue::Int(sp as i64)),
        ("FIB_MASK", CardValue::Int(0)),
        ("FIBERMAS", CardValue::Int(0)),
        ("CLASS", CardValue::Str("STAR".into())),
        ("SUBCLASS", CardValue::Str(subclass(truth.teff, truth.logg))),
        ("Z", CardValue::Float(z, 8)),
        ("Z_ERR", CardValue::Float(2e-5 * (20.0 / snr_g).clamp(0.3, 10.0), 8)),
        ("SNRU", CardValue::Float(snr_bands[0], 2)),
        ("SNRG", CardValue::Float(snr_bands[1], 2)),
        ("SNRR", CardValue::Float(snr_bands[2], 2)),
        ("SNRI", CardValue::Float(snr_bands[3], 2)),
        ("SNRZ", CardValue::Float(snr_bands[4], 2)),
        ("HELIO_RV", CardValue::Float(0.0, 5)),
    ]);
    let template = if layout == "image" { IMAGE_LAYOUT_CARDS } else { COADD_LAYOUT_CARDS };
    let mut cards = fill_template(template, &header);
    if corruption == Some(Corruption::BadHeader) {
        cards.retain(|c| !c.starts_with("OBSID "));
    }
    let data = LamostData {
        cards,
        wave: wave.iter().map(|&w| w as f32).collect(),
        flux,
        ivar,
        ormask,
        image_layout: layout == "image",
        drop_coadd: corruption == Some(Corruption::MissingHdu),
    };
    (star, data)
}

struct LamostData {
    cards: Vec<String>,
    wave: Vec<f32>,
    flux: Vec<f32>,
    ivar: Vec<f32>,
    ormask: Vec<f32>,
    image_layout: bool,
    drop_coadd: bool,
}

/// The file's bytes (uncompressed).
fn fits_bytes(d: &LamostData) -> Vec<u8> {
    if d.image_layout {
        return crate::fits::bytes::image_layout(&d.cards, [&d.flux, &d.ivar, &d.wave, &d.ormask, &d.ormask]);
    }
    if d.drop_coadd {
        return crate::fits::bytes::coadd_layout(&d.cards, &[]);
    }
    let norm = vec![-9999.0f32; d.wave.len()];
    let columns: [(&str, &[f32]); 6] = [
        ("FLUX", &d.flux),
        ("IVAR", &d.ivar),
        ("WAVELENGTH", &d.wave),
        ("ANDMASK", &d.ormask),
        ("ORMASK", &d.ormask),
        ("NORMALIZATION", &norm),
    ];
    crate::fits::bytes::coadd_layout(&d.cards, &columns)
}

fn write_star(dir: &Path, star: &MockStar, data: &LamostData) -> Result<(), MockError> {
    let final_path = dir.join(&star.file);
    let err = |m: String| MockError::Write { path: final_path.clone(), message: m };
    let mut bytes = fits_bytes(data);
    if star.gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 2), flate2::Compression::fast());
        enc.write_all(&bytes).map_err(|e| err(e.to_string()))?;
        bytes = enc.finish().map_err(|e| err(e.to_string()))?;
    }
    if star.corruption == Some(Corruption::Truncated) {
        bytes.truncate(bytes.len() / 2);
    }
    // A hidden temporary name: a directory walk (ingest) never takes a file being written.
    let tmp = dir.join(format!(".{}.tmp", star.file));
    crate::io::write_atomically_via(&tmp, &final_path, |tmp| {
        std::fs::write(tmp, &bytes).map_err(|e| MockError::Write { path: tmp.to_path_buf(), message: e.to_string() })
    })
}

/// Generates `stars.count(n)` mock LAMOST stars into `dir` (files) and returns their catalogue
/// rows, in order. Deterministic for a seed, whatever the number of threads: star `i` draws from
/// its own stream. `on_file` is called after each file is written (for progress reporting).
pub fn generate_lamost(
    dir: &Path,
    stars: Stars,
    n: usize,
    seed: u64,
    snr: SnrDistribution,
    corrupt_frac: f64,
    on_file: &(dyn Fn() + Sync),
) -> Result<Vec<MockStar>, MockError> {
    use rayon::prelude::*;
    std::fs::create_dir_all(dir).map_err(|e| MockError::Write { path: dir.to_path_buf(), message: e.to_string() })?;
    (0..stars.count(n))
        .into_par_iter()
        .map(|i| {
            let (star, data) = make_star(stars, seed, i, snr, corrupt_frac);
            write_star(dir, &star, &data)?;
            on_file();
            Ok(star)
        })
        .collect()
}

/// An error for the CSV: empty when unknown (NaN).
fn error_text(v: f64, decimals: usize) -> String {
    if v.is_nan() { String::new() } else { format!("{v:.decimals$}") }
}

/// The mock Gaia source_id of a mock LAMOST star (apart from the DESI mock's own range).
pub fn mock_lamost_gaia_id(obsid: i64) -> i64 {
    4_500_000_000_000_000_000 + obsid.rem_euclid(1_000_000_000_000_000)
}

impl MockStar {
    /// The star's mock Gaia source_id: one per library star (its renders are one star), else one
    /// per emulated star.
    pub fn gaia_source_id(&self) -> i64 {
        match self.library_id {
            Some(id) => 4_600_000_000_000_000_000 + id.rem_euclid(1_000_000_000_000_000),
            None => mock_lamost_gaia_id(self.obsid),
        }
    }
}

/// Writes the label catalogue as Parquet (`schemas/mock_lamost_labels.toml`) and CSV.
pub fn write_label_catalog(dir: &Path, stars: &[MockStar]) -> Result<(), MockError> {
    use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray};
    use std::sync::Arc;
    let schema = crate::schema::mock_lamost_labels().to_arrow(0);
    let f64s = |f: &dyn Fn(&MockStar) -> f64| -> ArrayRef {
        Arc::new(stars.iter().map(|s| Some(f(s))).collect::<Float64Array>())
    };
    // A library star's catalogue error is unknown (NaN): written as null.
    let errors = |f: &dyn Fn(&MockStar) -> f64| -> ArrayRef {
        Arc::new(stars.iter().map(|s| Some(f(s)).filter(|v| !v.is_nan())).collect::<Float64Array>())
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match field.name().as_str() {
                "obsid" => Arc::new(stars.iter().map(|s| Some(s.obsid)).collect::<Int64Array>()),
                "file" => Arc::new(stars.iter().map(|s| Some(s.file.as_str())).collect::<StringArray>()),
                "layout" => Arc::new(stars.iter().map(|s| Some(s.layout)).collect::<StringArray>()),
                "gzip" => Arc::new(stars.iter().map(|s| Some(s.gzip)).collect::<BooleanArray>()),
                "npix" => Arc::new(stars.iter().map(|s| Some(s.npix as i32)).collect::<Int32Array>()),
                "library_id" => Arc::new(stars.iter().map(|s| s.library_id).collect::<Int64Array>()),
                "gaia_source_id" => Arc::new(stars.iter().map(|s| Some(s.gaia_source_id())).collect::<Int64Array>()),
                "teff_true" => f64s(&|s| s.truth.teff),
                "logg_true" => f64s(&|s| s.truth.logg),
                "feh_true" => f64s(&|s| s.truth.feh),
                "teff" => f64s(&|s| s.catalog.teff),
                "logg" => f64s(&|s| s.catalog.logg),
                "feh" => f64s(&|s| s.catalog.feh),
                "teff_err" => errors(&|s| s.catalog_err.teff),
                "logg_err" => errors(&|s| s.catalog_err.logg),
                "feh_err" => errors(&|s| s.catalog_err.feh),
                "rv_kms" => f64s(&|s| s.rv_kms),
                "snr_g" => f64s(&|s| s.snr_g),
                "corruption" => {
                    Arc::new(stars.iter().map(|s| s.corruption.map(Corruption::as_str)).collect::<StringArray>())
                }
                other => panic!("column '{other}' of schemas/mock_lamost_labels.toml has no writer"),
            }
        })
        .collect();
    let csv_rows = stars.iter().map(|s| {
        vec![
            s.obsid.to_string(),
            s.file.clone(),
            s.layout.to_string(),
            s.gzip.to_string(),
            s.npix.to_string(),
            s.library_id.map(|i| i.to_string()).unwrap_or_default(),
            s.gaia_source_id().to_string(),
            format!("{:.1}", s.truth.teff),
            format!("{:.3}", s.truth.logg),
            format!("{:.3}", s.truth.feh),
            format!("{:.1}", s.catalog.teff),
            format!("{:.3}", s.catalog.logg),
            format!("{:.3}", s.catalog.feh),
            error_text(s.catalog_err.teff, 1),
            error_text(s.catalog_err.logg, 3),
            error_text(s.catalog_err.feh, 3),
            format!("{:.2}", s.rv_kms),
            format!("{:.2}", s.snr_g),
            s.corruption.map(Corruption::as_str).unwrap_or("").to_string(),
        ]
    });
    super::label_files::write_label_files(dir, schema, columns, csv_rows)
}

#[cfg(test)]
mod tests {
    fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect()
    }

    #[test]
    fn the_same_bytes_whatever_the_thread_count_and_one_star_alone_equals_its_copy() {
        let snr = SnrDistribution { min: 10.0, max: 80.0 };
        let run = |threads: usize| {
            let dir = tempfile::tempdir().unwrap();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| generate_lamost(dir.path(), Stars::builtin(), 12, 5, snr, 0.3, &|| {})).unwrap();
            (files(dir.path()), dir)
        };
        let (one, _d1) = run(1);
        let (three, _d3) = run(3);
        assert_eq!(one.len(), 12);
        assert!(one == three, "thread count changed the files");
        // Star 7 regenerated alone, through the same writer, is its copy in the full survey.
        let alone = tempfile::tempdir().unwrap();
        let (star, data) = make_star(Stars::builtin(), 5, 7, snr, 0.3);
        write_star(alone.path(), &star, &data).unwrap();
        let (name, bytes) = files(alone.path()).into_iter().next().unwrap();
        assert_eq!(one.get(&name), Some(&bytes), "{name}");
    }
    use super::*;
    use crate::fits::cards::{drop_primary_extname, write_cards};
    use fitsio::FitsFile;
    use fitsio::images::{ImageDescription, ImageType};
    use fitsio::tables::{ColumnDataType, ColumnDescription};

    /// The writer the in-memory one replaced: cfitsio, card by card.
    fn write_fits(path: &Path, d: &LamostData) -> Result<(), String> {
        let npix = d.wave.len();
        let e = |e: fitsio::errors::Error| e.to_string();
        if d.image_layout {
            let desc = ImageDescription { data_type: ImageType::Float, dimensions: &[5, npix] };
            let mut f = FitsFile::create(path).with_custom_primary(&desc).open().map_err(e)?;
            drop_primary_extname(&mut f);
            write_cards(&mut f, &d.cards)?;
            let mut data = Vec::with_capacity(5 * npix);
            for row in [&d.flux, &d.ivar, &d.wave, &d.ormask, &d.ormask] {
                data.extend_from_slice(row);
            }
            let prim = f.primary_hdu().map_err(e)?;
            prim.write_image(&mut f, &data).map_err(e)?;
        } else {
            let mut f = FitsFile::create(path).open().map_err(e)?;
            drop_primary_extname(&mut f);
            write_cards(&mut f, &d.cards)?;
            if !d.drop_coadd {
                let col =
                    |n: &str| ColumnDescription::new(n).with_type(ColumnDataType::Float).that_repeats(npix).create();
                let names = ["FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK", "NORMALIZATION"];
                let cols: Vec<_> = names.iter().map(|n| col(n)).collect::<Result<_, _>>().map_err(e)?;
                let hdu = f.create_table("COADD", &cols).map_err(e)?;
                let norm = vec![-9999.0f32; npix];
                for (n, v) in names.iter().zip([&d.flux, &d.ivar, &d.wave, &d.ormask, &d.ormask, &norm]) {
                    hdu.write_col(&mut f, *n, v).map_err(e)?;
                }
            }
        }
        Ok(())
    }

    /// Writes star `i`'s file into `dir` (temporary name, then rename; gzip'd when drawn so).

    #[test]
    fn in_memory_files_equal_what_cfitsio_writes() {
        let dir = tempfile::tempdir().unwrap();
        let snr = SnrDistribution { min: 20.0, max: 150.0 };
        let (mut image, mut coadd) = (0, 0);
        for i in 0..40 {
            let (_, mut data) = make_star(Stars::builtin(), 5, i, snr, 0.0);
            if data.image_layout {
                image += 1;
            } else {
                coadd += 1;
                data.drop_coadd = coadd == 2;
            }
            let path = dir.path().join(format!("{i}.fits"));
            write_fits(&path, &data).unwrap();
            let reference = std::fs::read(&path).unwrap();
            let ours = fits_bytes(&data);
            assert_eq!(ours.len(), reference.len(), "star {i}: length");
            assert!(ours == reference, "star {i} (image layout {}): bytes differ", data.image_layout);
        }
        assert!(image > 3 && coadd > 3, "both layouts covered: {image} image, {coadd} coadd");
    }
}
