//! Mock DESI surveys: healpix coadds (`SURVEY/PROGRAM/PIXGROUP/PIXNUM/coadd-…fits`) with their
//! redrock files, in the real formats (every HDU and FIBERMAP/SCORES/REDSHIFTS column of real fuji
//! files), with the rows a real coadd has besides stars: galaxies and quasars, sky fibres,
//! unassigned fibres (TARGETID < 0, redrock's STAR/CV ZWARN=1570 trap) and fibres with bad status.
//! A label table keyed by TARGETID follows the style of the DESI MWS value-added catalogue.

use super::fits_tables::{Column, write_table, write_table_without};
use super::labels::StarLabels;
use super::render::{add_noise, calibration_error, observed_frame_spectrum};
use super::{Corruption, EXTENSION_END_VACUUM, MockError, SnrDistribution, Stars};
use crate::fits::cards::{CardValue, drop_primary_extname, format_card, write_cards};
use crate::preprocess::{C_KMS, resample};
use crate::spectrum::Arm;
use fitsio::FitsFile;
use fitsio::images::{ImageDescription, ImageType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// DESI arms: name, first and last pixel centre (Å, vacuum), 0.8 Å pixels.
pub const DESI_ARMS: [(&str, f64, f64); 3] = [("B", 3600.0, 5800.0), ("R", 5760.0, 7620.0), ("Z", 7520.0, 9824.0)];
const PIXEL: f64 = 0.8;
/// The mock's line-spread FWHM, Å: MILES' (DESI's own is 1.5–1.8 Å; MILES cannot be sharpened).
const MOCK_LSF_FWHM: f64 = 2.5;
const HPX_DEPTH: u8 = 6; // nside 64
const DESI_TARGET_MWS_ANY: i64 = 1 << 61;
const DESI_TARGET_BGS_ANY: i64 = 1 << 60;
const DESI_TARGET_QSO: i64 = 1 << 2;

/// What a FIBERMAP row of a mock coadd holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Star,
    /// A star on a fibre whose COADD_FIBERSTATUS has BADAMPZ (bit 24) set.
    BadFiberStar,
    Galaxy,
    Qso,
    Sky,
    Unassigned,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Star => "star",
            RowKind::BadFiberStar => "star_bad_fiberstatus",
            RowKind::Galaxy => "galaxy",
            RowKind::Qso => "qso",
            RowKind::Sky => "sky",
            RowKind::Unassigned => "unassigned",
        }
    }
}

/// One FIBERMAP row of the mock, as the label table records it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiMockRow {
    pub targetid: i64,
    pub kind: RowKind,
    pub file: String,
    pub healpix: u64,
    pub ra: f64,
    pub dec: f64,
    /// Stars: labels, radial velocity and catalogue-style labels with errors.
    pub truth: Option<StarLabels>,
    /// The library star rendered (`mock --library`), None for emulated stars and non-stars.
    pub library_id: Option<i64>,
    pub catalog: Option<StarLabels>,
    pub catalog_err: Option<StarLabels>,
    /// Redshift (z = v/c for stars).
    pub z: f64,
    pub snr_r: f64,
    pub corruption: Option<Corruption>,
    /// DESI PROGRAM of the coadd: "bright", or "dark" for a revisit of the pixel.
    pub program: &'static str,
    /// Stars: the mock Gaia source_id written as REF_ID (a LAMOST mock star's with --overlap).
    pub gaia_source_id: Option<i64>,
}

/// Stars of a LAMOST mock that a DESI mock observes too (`mock --overlap`): their mock Gaia ids and
/// true labels; a star row takes one of them with probability `fraction`.
#[derive(Debug, Clone, Default)]
pub struct Overlap {
    pub stars: Vec<(i64, StarLabels)>,
    pub fraction: f64,
    /// LAMOST obsid of each star of `stars`, by its Gaia id (for the crossmatch table).
    pub obsid: std::collections::HashMap<i64, i64>,
}

/// What a DESI mock adds to its plain coadds.
#[derive(Debug, Clone, Default)]
pub struct DesiExtras {
    /// Fraction of the pixels observed again in the dark program (emulated stars).
    pub revisit_fraction: f64,
    /// Stars shared with a LAMOST mock (emulated stars).
    pub overlap: Option<Overlap>,
}

fn arm_grid(lo: f64, hi: f64) -> Vec<f64> {
    let n = ((hi - lo) / PIXEL).round() as usize + 1;
    (0..n).map(|i| lo + PIXEL * i as f64).collect()
}

fn edges(wave: &[f64]) -> Vec<f64> {
    let mut e = Vec::with_capacity(wave.len() + 1);
    e.push(wave[0] - PIXEL / 2.0);
    e.extend(wave.iter().map(|w| w + PIXEL / 2.0));
    e
}

fn normal(rng: &mut impl Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Simple contaminant spectra in the observed frame: a galaxy (4000 Å break + emission lines) or a
/// quasar (power law + broad lines). Enough for redrock-style rejection, not for their science.
fn contaminant(kind: RowKind, z: f64, wave: &[f64]) -> Vec<f32> {
    let lines: &[(f64, f64, f64)] = match kind {
        // rest Å, amplitude, width Å
        RowKind::Galaxy => &[(3727.4, 1.5, 3.0), (4862.7, 0.8, 3.0), (5008.2, 1.2, 3.0), (6564.6, 2.0, 3.0)],
        _ => &[(1549.1, 4.0, 40.0), (1908.7, 2.0, 40.0), (2799.1, 2.5, 40.0), (4862.7, 2.0, 40.0), (6564.6, 4.0, 50.0)],
    };
    wave.iter()
        .map(|&w| {
            let rest = w / (1.0 + z);
            let cont = match kind {
                RowKind::Galaxy => (if rest < 4000.0 { 0.6 } else { 1.0 }) * (rest / 5000.0).powf(0.5),
                _ => (rest / 3000.0).powf(-0.5),
            };
            let em: f64 = lines.iter().map(|(c, a, s)| a * (-0.5 * ((rest - c) / s).powi(2)).exp()).sum();
            (cont + em) as f32
        })
        .collect()
}

/// The 11-diagonal RESOLUTION data of one spectrum on an arm: a Gaussian of the mock's LSF,
/// rows of R as in desispec (offsets 5…−5, columns aligned with the pixels).
fn resolution_data(nwave: usize) -> Vec<f32> {
    let sigma_px = MOCK_LSF_FWHM / 2.354_820_045 / PIXEL;
    let kernel: Vec<f64> = (0..11).map(|k| (-0.5 * ((5.0 - k as f64) / sigma_px).powi(2)).exp()).collect();
    let sum: f64 = kernel.iter().sum();
    let mut out = Vec::with_capacity(11 * nwave);
    for k in &kernel {
        out.extend(std::iter::repeat_n((k / sum) as f32, nwave));
    }
    out
}

struct ArmData {
    flux: Vec<f32>,
    ivar: Vec<f32>,
    mask: Vec<i64>,
}

/// Draws the rows of coadd `file_index` and renders their spectra. A library mock fills every row
/// with a star: row `r` is render `first_render + r`.
#[allow(clippy::too_many_arguments)]
fn make_file(
    stars: Stars,
    seed: u64,
    file_index: usize,
    first_render: usize,
    rows: usize,
    snr: SnrDistribution,
    corrupt_frac: f64,
    overlap: Option<&Overlap>,
) -> (Vec<DesiMockRow>, Vec<[ArmData; 3]>, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00de_5100);
    rng.set_stream(file_index as u64);
    let healpix = 10_000 + 37 * file_index as u64 % 39_000;
    let (lon, lat) = cdshealpix::nested::center(HPX_DEPTH, healpix);
    let corruption = (rng.random::<f64>() < corrupt_frac).then(|| match rng.random_range(0..4) {
        0 => Corruption::Truncated,
        1 => Corruption::BadHeader,
        2 => Corruption::NanFlux,
        _ => Corruption::MissingHdu,
    });
    let file = format!("main/bright/{}/{healpix}/coadd-main-bright-{healpix}.fits", healpix / 100);
    let grids: Vec<Vec<f64>> = DESI_ARMS.iter().map(|(_, lo, hi)| arm_grid(*lo, *hi)).collect();
    let mut out_rows = Vec::with_capacity(rows);
    let mut spectra = Vec::with_capacity(rows);
    for r in 0..rows {
        let u: f64 = rng.random();
        let kind = if stars.is_library() {
            RowKind::Star
        } else {
            match u {
                u if u < 0.62 => RowKind::Star,
                u if u < 0.67 => RowKind::BadFiberStar,
                u if u < 0.82 => RowKind::Galaxy,
                u if u < 0.87 => RowKind::Qso,
                u if u < 0.93 => RowKind::Sky,
                _ => RowKind::Unassigned,
            }
        };
        // Positions inside the ~0.9° pixel, as in a real healpix coadd: drawn around its centre
        // and redrawn until they fall in it (the pixel is a diamond, not the square drawn from).
        let (ra, dec) = loop {
            let ra =
                (lon.to_degrees() + 0.5 * (2.0 * rng.random::<f64>() - 1.0) / lat.cos().max(0.1)).rem_euclid(360.0);
            let dec = (lat.to_degrees() + 0.5 * (2.0 * rng.random::<f64>() - 1.0)).clamp(-90.0, 90.0);
            if cdshealpix::nested::hash(HPX_DEPTH, ra.to_radians(), dec.to_radians()) == healpix {
                break (ra, dec);
            }
        };
        let targetid = match kind {
            RowKind::Unassigned => -(1_000_000 + (file_index * 1000 + r) as i64),
            RowKind::Sky => 616_000_000_000_000_000 + (file_index * 1000 + r) as i64,
            // Library renders apart from emulated stars, so both label tables can be joined.
            _ if stars.is_library() => 39_700_000_000_000_000 + (file_index * 1000 + r) as i64,
            _ => 39_600_000_000_000_000 + (file_index * 1000 + r) as i64,
        };
        let snr_r = snr.draw(&mut rng);
        let mut gaia_source_id = None;
        let (truth, library_id, z, model): (Option<StarLabels>, Option<i64>, f64, Option<Arm>) = match kind {
            RowKind::Star | RowKind::BadFiberStar => {
                let render = first_render + r;
                let (mut s, library_id) = stars.labels(render, &mut rng);
                gaia_source_id = Some(mock_gaia_source_id(targetid));
                // A star the LAMOST mock has too: its labels and Gaia id (drawn only with --overlap,
                // so other mocks keep their bytes).
                if let Some(o) = overlap.filter(|o| !o.stars.is_empty())
                    && rng.random::<f64>() < o.fraction
                {
                    let (id, labels) = o.stars[render % o.stars.len()];
                    s = labels;
                    gaia_source_id = Some(id);
                }
                let rv = if s.feh < -1.0 { 120.0 } else { 35.0 } * normal(&mut rng);
                let rest = stars.rest_spectrum(render, &s, EXTENSION_END_VACUUM);
                (Some(s), library_id, rv / C_KMS, Some(observed_frame_spectrum(rest, rv)))
            }
            RowKind::Galaxy => (None, None, 0.05 + 0.45 * rng.random::<f64>(), None),
            RowKind::Qso => (None, None, 0.8 + 1.7 * rng.random::<f64>(), None),
            _ => (None, None, 0.0, None),
        };
        let arms = observe(&mut rng, &grids, kind, model.as_ref(), z, snr_r, corruption);
        let (catalog, catalog_err) = match truth {
            // A library star's labels are the literature's, with no stated error.
            Some(t) if library_id.is_some() => (Some(t), None),
            Some(t) => {
                let scale = (30.0 / snr_r.max(1.0)).clamp(0.4, 6.0);
                let err = StarLabels { teff: 60.0 * scale, logg: 0.12 * scale, feh: 0.08 * scale };
                let cat = StarLabels {
                    teff: t.teff + err.teff * normal(&mut rng),
                    logg: t.logg + err.logg * normal(&mut rng),
                    feh: t.feh + err.feh * normal(&mut rng),
                };
                (Some(cat), Some(err))
            }
            None => (None, None),
        };
        out_rows.push(DesiMockRow {
            targetid,
            kind,
            file: file.clone(),
            healpix,
            ra,
            dec,
            truth,
            library_id,
            catalog,
            catalog_err,
            z,
            snr_r,
            corruption,
            program: "bright",
            gaia_source_id,
        });
        let [b, r_, zarm]: [ArmData; 3] = arms.try_into().ok().expect("three arms");
        spectra.push([b, r_, zarm]);
    }
    (out_rows, spectra, healpix)
}

/// A second visit of a mock pixel, in the dark program: the same targets (ids, positions, labels,
/// catalogue labels, redshifts), observed again with their own S/N, calibration and noise, so
/// repeat spectra of one TARGETID sit in two coadds as they do in a DESI release.
fn revisit_file(
    stars: Stars,
    seed: u64,
    file_index: usize,
    first: &[DesiMockRow],
    snr: SnrDistribution,
) -> (Vec<DesiMockRow>, Vec<[ArmData; 3]>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00da_7c00);
    rng.set_stream(file_index as u64);
    let grids: Vec<Vec<f64>> = DESI_ARMS.iter().map(|(_, lo, hi)| arm_grid(*lo, *hi)).collect();
    let healpix = first[0].healpix;
    let file = format!("main/dark/{}/{healpix}/coadd-main-dark-{healpix}.fits", healpix / 100);
    let mut rows = Vec::with_capacity(first.len());
    let mut spectra = Vec::with_capacity(first.len());
    for (r, row) in first.iter().enumerate() {
        let snr_r = snr.draw(&mut rng);
        let model = row.truth.map(|t| {
            let rest = stars.rest_spectrum(r, &t, EXTENSION_END_VACUUM);
            observed_frame_spectrum(rest, row.z * C_KMS)
        });
        // A file damaged on its first visit is not damaged again.
        let arms = observe(&mut rng, &grids, row.kind, model.as_ref(), row.z, snr_r, None);
        rows.push(DesiMockRow { file: file.clone(), snr_r, corruption: None, program: "dark", ..row.clone() });
        let [b, r_, zarm]: [ArmData; 3] = arms.try_into().ok().expect("three arms");
        spectra.push([b, r_, zarm]);
    }
    (rows, spectra)
}

/// The three arms of one FIBERMAP row as observed: the model (a star, in the observed frame) or a
/// contaminant, times a brightness and a calibration error, with noise, cosmics and, for unassigned
/// fibres, NODATA.
fn observe(
    rng: &mut ChaCha8Rng,
    grids: &[Vec<f64>],
    kind: RowKind,
    model: Option<&Arm>,
    z: f64,
    snr_r: f64,
    corruption: Option<Corruption>,
) -> Vec<ArmData> {
    let brightness = 8.0 * 10f64.powf(rng.random_range(-0.4..0.6));
    grids
        .iter()
        .enumerate()
        .map(|(a, wave)| {
            let n = wave.len();
            if kind == RowKind::Unassigned {
                return ArmData { flux: vec![0.0; n], ivar: vec![0.0; n], mask: vec![1 << 8; n] }; // NODATA
            }
            let clean: Vec<f32> = match (model, kind) {
                // Pixels the star's spectrum does not cover carry no light (masked by add_noise).
                (Some(m), _) => {
                    let g = resample(m, &edges(wave), 0.5);
                    g.flux.iter().zip(&g.ivar).map(|(f, iv)| if *iv > 0.0 { *f } else { 0.0 }).collect()
                }
                (None, RowKind::Galaxy | RowKind::Qso) => contaminant(kind, z, wave),
                _ => vec![0.0; n],
            };
            let response = calibration_error(rng, wave, 0.03);
            let flux: Vec<f32> =
                clean.iter().zip(&response).map(|(f, r)| (*f as f64 * r * brightness) as f32).collect();
            let arm_snr = snr_r * [0.75, 1.0, 0.9][a];
            let (mut f, mut iv) = if kind == RowKind::Sky {
                let sigma = 0.5;
                ((0..n).map(|_| (sigma * normal(rng)) as f32).collect(), vec![(1.0 / (sigma * sigma)) as f32; n])
            } else {
                add_noise(rng, &flux, &vec![arm_snr; n], 0.02 * brightness)
            };
            let mut mask = vec![0i64; n];
            for _ in 0..rng.random_range(0..6) {
                let j = rng.random_range(0..n);
                mask[j] = 1 << 2; // COSMIC
                iv[j] = 0.0;
            }
            if corruption == Some(Corruption::NanFlux) && model.is_some() {
                f.iter_mut().for_each(|x| *x = f32::NAN);
            }
            ArmData { flux: f, ivar: iv, mask }
        })
        .collect()
}

fn subtype(teff: f64) -> &'static str {
    match teff {
        t if t >= 30000.0 => "O",
        t if t >= 10000.0 => "B",
        t if t >= 7300.0 => "A",
        t if t >= 6000.0 => "F",
        t if t >= 5300.0 => "G",
        t if t >= 3900.0 => "K",
        _ => "M",
    }
}

fn fibermap_values(rows: &[DesiMockRow]) -> HashMap<&'static str, Column> {
    let objtype = rows
        .iter()
        .map(|r| {
            match r.kind {
                RowKind::Sky => "SKY",
                RowKind::Unassigned => "",
                _ => "TGT",
            }
            .to_string()
        })
        .collect();
    let status = rows
        .iter()
        .map(|r| match r.kind {
            RowKind::Unassigned => 1,
            RowKind::BadFiberStar => 1 << 24,
            _ => 0,
        })
        .collect();
    let desi_target = rows
        .iter()
        .map(|r| match r.kind {
            RowKind::Star | RowKind::BadFiberStar => DESI_TARGET_MWS_ANY,
            RowKind::Galaxy => DESI_TARGET_BGS_ANY,
            RowKind::Qso => DESI_TARGET_QSO,
            _ => 0,
        })
        .collect();
    let mws = rows.iter().map(|r| i64::from(matches!(r.kind, RowKind::Star | RowKind::BadFiberStar))).collect();
    // Stars are Gaia sources (REF_CAT G2, a mock source_id of their own); other rows have no
    // reference-catalogue match, written as DESI does (0, blank, magnitude 0).
    let gaia = |r: &DesiMockRow| r.truth.zip(r.gaia_source_id).map(|(t, id)| (id, mock_gaia_mags(t.teff, r.snr_r)));
    let ref_id = rows.iter().map(|r| gaia(r).map_or(0, |g| g.0)).collect();
    let ref_cat = rows.iter().map(|r| if gaia(r).is_some() { "G2" } else { "" }.to_string()).collect();
    let mag = |k: usize| Column::F32(rows.iter().map(|r| gaia(r).map_or(0.0, |g| g.1[k])).collect());
    HashMap::from([
        ("TARGETID", Column::I64(rows.iter().map(|r| r.targetid).collect())),
        ("TARGET_RA", Column::F64(rows.iter().map(|r| r.ra).collect())),
        ("TARGET_DEC", Column::F64(rows.iter().map(|r| r.dec).collect())),
        ("OBJTYPE", Column::Str(objtype)),
        ("COADD_FIBERSTATUS", Column::I32(status)),
        ("DESI_TARGET", Column::I64(desi_target)),
        ("MWS_TARGET", Column::I64(mws)),
        ("REF_ID", Column::I64(ref_id)),
        ("REF_CAT", Column::Str(ref_cat)),
        ("GAIA_PHOT_G_MEAN_MAG", mag(0)),
        ("GAIA_PHOT_BP_MEAN_MAG", mag(1)),
        ("GAIA_PHOT_RP_MEAN_MAG", mag(2)),
        ("COADD_NUMEXP", Column::I32(vec![1; rows.len()])),
        ("COADD_EXPTIME", Column::F32(vec![900.0; rows.len()])),
    ])
}

/// The mock Gaia source_id of a mock star: unique per TARGETID, in Gaia's 64-bit range.
pub fn mock_gaia_source_id(targetid: i64) -> i64 {
    4_000_000_000_000_000_000 + targetid.rem_euclid(1_000_000_000_000_000)
}

/// Mock Gaia G, BP, RP (mag): G from the S/N (brighter stars have more signal), BP − RP from Teff.
/// Plausible, not photometry: enough to test that magnitudes travel to the catalogue.
fn mock_gaia_mags(teff: f64, snr_r: f64) -> [f32; 3] {
    let g = 19.5 - 2.5 * (snr_r.max(1.0) / 5.0).log10();
    let bp_rp = (1.6 * 5040.0 / teff - 0.55).clamp(-0.3, 4.0);
    [g as f32, (g + 0.45 * bp_rp) as f32, (g - 0.55 * bp_rp) as f32]
}

fn write_image_f32(
    f: &mut FitsFile,
    name: &str,
    dims: &[usize],
    data: &[f32],
    bunit: Option<&str>,
) -> Result<(), String> {
    let e = |e: fitsio::errors::Error| format!("{name}: {e}");
    let hdu = f.create_image(name, &ImageDescription { data_type: ImageType::Float, dimensions: dims }).map_err(e)?;
    hdu.write_image(f, data).map_err(e)?;
    if let Some(unit) = bunit {
        write_cards(f, &[format_card("BUNIT", &CardValue::Str(unit.into()), "")])?;
    }
    Ok(())
}

fn write_coadd(
    path: &Path,
    rows: &[DesiMockRow],
    spectra: &[[ArmData; 3]],
    healpix: u64,
    seed: u64,
) -> Result<(), String> {
    let e = |e: fitsio::errors::Error| e.to_string();
    let mut f = FitsFile::create(path).open().map_err(e)?;
    drop_primary_extname(&mut f);
    let card = |k: &str, v: CardValue| format_card(k, &v, "");
    write_cards(
        &mut f,
        &[
            card("SPGRP", CardValue::Str("healpix".into())),
            card("SPGRPVAL", CardValue::Int(healpix as i64)),
            card("HPXPIXEL", CardValue::Int(healpix as i64)),
            card("HPXNSIDE", CardValue::Int(64)),
            card("HPXNEST", CardValue::Str("True".into())),
            card("SURVEY", CardValue::Str("main".into())),
            card("PROGRAM", CardValue::Str(rows[0].program.into())),
            card("DEPNAM00", CardValue::Str("SPECPROD".into())),
            card("DEPVER00", CardValue::Str("mock".into())),
            card("DEPNAM01", CardValue::Str("starpipe".into())),
            card("DEPVER01", CardValue::Str(format!("{} seed {seed}", crate::VERSION))),
        ],
    )?;
    let n = rows.len();
    let corruption = rows[0].corruption;
    // A "bad header": the FIBERMAP table declares no TARGET_RA column.
    let omit: &[&str] = if corruption == Some(Corruption::BadHeader) { &["TARGET_RA"] } else { &[] };
    write_table_without(&mut f, "FIBERMAP", "coadd.FIBERMAP", n, &fibermap_values(rows), omit)?;
    let exp = HashMap::from([
        ("TARGETID", Column::I64(rows.iter().map(|r| r.targetid).collect())),
        (
            "FIBERSTATUS",
            Column::I32(rows.iter().map(|r| if r.kind == RowKind::BadFiberStar { 1 << 24 } else { 0 }).collect()),
        ),
    ]);
    write_table(&mut f, "EXP_FIBERMAP", "coadd.EXP_FIBERMAP", n, &exp)?;
    let mut snr_cols: Vec<Vec<f32>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
    for (a, (name, lo, hi)) in DESI_ARMS.iter().enumerate() {
        let wave = arm_grid(*lo, *hi);
        let nw = wave.len();
        let wh = f
            .create_image(
                format!("{name}_WAVELENGTH"),
                &ImageDescription { data_type: ImageType::Double, dimensions: &[nw] },
            )
            .map_err(e)?;
        wh.write_image(&mut f, &wave).map_err(e)?;
        let gather = |pick: &dyn Fn(&ArmData) -> &[f32]| {
            spectra.iter().flat_map(|s| pick(&s[a]).iter().copied()).collect::<Vec<f32>>()
        };
        // A "missing HDU": the z arm has no FLUX image.
        if corruption == Some(Corruption::MissingHdu) && *name == "Z" {
            continue;
        }
        write_image_f32(
            &mut f,
            &format!("{name}_FLUX"),
            &[n, nw],
            &gather(&|d| &d.flux),
            Some("10**-17 erg/(s cm2 Angstrom)"),
        )?;
        write_image_f32(
            &mut f,
            &format!("{name}_IVAR"),
            &[n, nw],
            &gather(&|d| &d.ivar),
            Some("10**+34 (s2 cm4 Angstrom2) / erg2"),
        )?;
        // MASK: uint32 stored as int32 with BZERO 2^31, as desispec writes it.
        let mh = f
            .create_image(
                format!("{name}_MASK"),
                &ImageDescription { data_type: ImageType::UnsignedLong, dimensions: &[n, nw] },
            )
            .map_err(e)?;
        let mask: Vec<u32> = spectra.iter().flat_map(|s| s[a].mask.iter().map(|&m| m as u32)).collect();
        mh.write_image(&mut f, &mask).map_err(e)?;
        let res = resolution_data(nw);
        let all: Vec<f32> = (0..n).flat_map(|_| res.iter().copied()).collect();
        write_image_f32(&mut f, &format!("{name}_RESOLUTION"), &[n, 11, nw], &all, None)?;
        for s in spectra {
            snr_cols[a].push(super::render::band_snr(&wave, &s[a].flux, &s[a].ivar, *lo, *hi) as f32);
        }
    }
    let scores = HashMap::from([
        ("TARGETID", Column::I64(rows.iter().map(|r| r.targetid).collect())),
        ("MEDIAN_COADD_SNR_B", Column::F32(snr_cols[0].clone())),
        ("MEDIAN_COADD_SNR_R", Column::F32(snr_cols[1].clone())),
        ("MEDIAN_COADD_SNR_Z", Column::F32(snr_cols[2].clone())),
    ]);
    write_table(&mut f, "SCORES", "coadd.SCORES", n, &scores)
}

fn write_redrock(path: &Path, rows: &[DesiMockRow]) -> Result<(), String> {
    let e = |e: fitsio::errors::Error| e.to_string();
    let mut f = FitsFile::create(path).open().map_err(e)?;
    drop_primary_extname(&mut f);
    write_cards(&mut f, &[format_card("RRVER", &CardValue::Str("mock".into()), "Redrock version")])?;
    let n = rows.len();
    let spectype = rows
        .iter()
        .map(|r| {
            match r.kind {
                RowKind::Star | RowKind::BadFiberStar | RowKind::Unassigned => "STAR",
                RowKind::Qso => "QSO",
                _ => "GALAXY",
            }
            .to_string()
        })
        .collect();
    let sub = rows
        .iter()
        .map(|r| match (r.kind, r.truth) {
            (RowKind::Unassigned, _) => "CV".to_string(),
            (_, Some(t)) => subtype(t.teff).to_string(),
            _ => String::new(),
        })
        .collect();
    // Unassigned fibres: fitted as STAR/CV with ZWARN 1570 (LITTLE_COVERAGE|Z_FITLIMIT|NODATA|BAD_MINFIT); sky: ZWARN SKY.
    let zwarn = rows
        .iter()
        .map(|r| match r.kind {
            RowKind::Unassigned => 1570,
            RowKind::Sky => 1,
            _ => 0,
        })
        .collect();
    let values = HashMap::from([
        ("TARGETID", Column::I64(rows.iter().map(|r| r.targetid).collect())),
        ("Z", Column::F64(rows.iter().map(|r| r.z).collect())),
        ("ZERR", Column::F64(rows.iter().map(|r| 1e-5 * (1.0 + r.z) * (20.0 / r.snr_r).clamp(0.3, 10.0)).collect())),
        ("ZWARN", Column::I64(zwarn)),
        ("SPECTYPE", Column::Str(spectype)),
        ("SUBTYPE", Column::Str(sub)),
        (
            "DELTACHI2",
            Column::F64(rows.iter().map(|r| if r.kind == RowKind::Unassigned { 1.9e84 } else { 500.0 }).collect()),
        ),
    ]);
    write_table(&mut f, "REDSHIFTS", "redrock.REDSHIFTS", n, &values)?;
    write_table(&mut f, "FIBERMAP", "redrock.FIBERMAP", n, &fibermap_values(rows))?;
    write_table(
        &mut f,
        "EXP_FIBERMAP",
        "redrock.EXP_FIBERMAP",
        n,
        &HashMap::from([("TARGETID", Column::I64(rows.iter().map(|r| r.targetid).collect()))]),
    )?;
    write_table(
        &mut f,
        "TSNR2",
        "redrock.TSNR2",
        n,
        &HashMap::from([("TARGETID", Column::I64(rows.iter().map(|r| r.targetid).collect()))]),
    )
}

/// Writes coadd + redrock of one healpix pixel (temporary names, then rename).
fn write_pixel(
    dir: &Path,
    rows: &[DesiMockRow],
    spectra: &[[ArmData; 3]],
    healpix: u64,
    seed: u64,
) -> Result<(), MockError> {
    let coadd = dir.join(&rows[0].file);
    let folder = coadd.parent().expect("nested path").to_path_buf();
    let err = |p: &PathBuf, m: String| MockError::Write { path: p.clone(), message: m };
    std::fs::create_dir_all(&folder).map_err(|e| err(&folder, e.to_string()))?;
    let redrock = folder.join(format!("redrock-main-{}-{healpix}.fits", rows[0].program));
    for (path, write) in [
        (&coadd, &(|p: &Path| write_coadd(p, rows, spectra, healpix, seed)) as &dyn Fn(&Path) -> Result<(), String>),
        (&redrock, &|p: &Path| write_redrock(p, rows)),
    ] {
        // A hidden temporary name: a directory walk (ingest) never takes a file being written.
        let tmp = folder.join(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
        let _ = std::fs::remove_file(&tmp);
        crate::io::write_atomically_via(&tmp, path, |tmp| {
            write(tmp).map_err(|m| err(path, m))?;
            if path == &coadd && rows[0].corruption == Some(Corruption::Truncated) {
                let len = std::fs::metadata(tmp).map_err(|e| err(path, e.to_string()))?.len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(tmp)
                    .and_then(|f| f.set_len(len / 2))
                    .map_err(|e| err(path, e.to_string()))?;
            }
            Ok::<_, MockError>(())
        })?;
    }
    Ok(())
}

/// Number of coadds a mock of `n_stars` stars with `rows_per_file` rows per coadd needs (a library
/// mock fills every row with a star).
pub fn coadds_needed(stars: Stars, n_stars: usize, rows_per_file: usize) -> usize {
    match stars {
        Stars::Library { .. } => stars.count(n_stars).div_ceil(rows_per_file).max(1),
        Stars::Emulated(_) => n_stars.div_ceil((rows_per_file as f64 * 0.62).max(1.0) as usize).max(1),
    }
}

impl Overlap {
    /// The stars of the LAMOST mock in `dir` (its `labels.parquet`: gaia_source_id and true labels).
    pub fn from_lamost_mock(dir: &Path, fraction: f64) -> Result<Self, MockError> {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float64Type, Int64Type};
        let path = dir.join("labels.parquet");
        let err = |message: String| MockError::Read { path: path.clone(), message };
        let file = std::fs::File::open(&path).map_err(|e| err(format!("{e} (a LAMOST mock directory?)")))?;
        let columns = ["gaia_source_id", "teff_true", "logg_true", "feh_true", "obsid"];
        let batches = crate::io::read_columns(file, &columns, 65_536).map_err(|e| err(e.to_string()))?;
        let (mut stars, mut obsid) = (Vec::new(), std::collections::HashMap::new());
        for b in batches {
            let b = b.map_err(|e| err(e.to_string()))?;
            let id = b.column(0).as_primitive::<Int64Type>();
            let v = |c: usize, i: usize| b.column(c).as_primitive::<Float64Type>().value(i);
            let obs = b.column(4).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                stars.push((id.value(i), StarLabels { teff: v(1, i), logg: v(2, i), feh: v(3, i) }));
                // A library star's renders share its Gaia id: the first render stands for it.
                obsid.entry(id.value(i)).or_insert(obs.value(i));
            }
        }
        if stars.is_empty() {
            return Err(err("no star in the label table".into()));
        }
        Ok(Self { stars, fraction, obsid })
    }
}

/// Number of pixels a mock of `coadds` bright-program coadds revisits in the dark program.
pub fn revisits_needed(coadds: usize, revisit_fraction: f64) -> usize {
    (coadds as f64 * revisit_fraction).round() as usize
}

/// Generates a mock DESI survey with about `n_stars` stars (files of `rows_per_file` FIBERMAP rows,
/// ~62 % of them good stars; a library mock: `stars.count(n_stars)` renders, every row a star) and
/// returns every row, file by file. With `revisit_fraction` > 0 (emulated stars), that fraction of
/// the pixels is observed again in the dark program: repeat spectra of the same TARGETIDs.
/// `on_file` is called after each coadd + redrock pair is written (for progress reporting).
#[allow(clippy::too_many_arguments)]
pub fn generate_desi(
    dir: &Path,
    stars: Stars,
    n_stars: usize,
    rows_per_file: usize,
    seed: u64,
    snr: SnrDistribution,
    corrupt_frac: f64,
    extras: &DesiExtras,
    on_file: &(dyn Fn() + Sync),
) -> Result<Vec<DesiMockRow>, MockError> {
    use rayon::prelude::*;
    let renders = stars.count(n_stars);
    let files = coadds_needed(stars, n_stars, rows_per_file);
    // Revisits are spread over the sky: every k-th pixel.
    let revisits = if stars.is_library() { 0 } else { revisits_needed(files, extras.revisit_fraction) };
    let overlap = extras.overlap.as_ref().filter(|_| !stars.is_library());
    let revisited = |i: usize| revisits > 0 && i.is_multiple_of(files.div_ceil(revisits));
    let per_file: Vec<Vec<DesiMockRow>> = (0..files)
        .into_par_iter()
        .map(|i| {
            let first = i * rows_per_file;
            let rows = if stars.is_library() { rows_per_file.min(renders - first) } else { rows_per_file };
            let (mut rows, spectra, healpix) = make_file(stars, seed, i, first, rows, snr, corrupt_frac, overlap);
            write_pixel(dir, &rows, &spectra, healpix, seed)?;
            on_file();
            if revisited(i) {
                let (again, spectra) = revisit_file(stars, seed, i, &rows, snr);
                write_pixel(dir, &again, &spectra, healpix, seed)?;
                on_file();
                rows.extend(again);
            }
            Ok(rows)
        })
        .collect::<Result<_, MockError>>()?;
    Ok(per_file.into_iter().flatten().collect())
}

/// Writes the label table as Parquet (`schemas/mock_desi_labels.toml`) and CSV.
/// Writes `crossmatch.parquet` and `crossmatch.csv` (schemas/crossmatch.toml): each DESI star row
/// that observes a star of the LAMOST mock (`--overlap`), with that star's obsid; one row per
/// (obsid, TARGETID) pair. Returns the number of pairs.
pub fn write_crossmatch(dir: &Path, rows: &[DesiMockRow], overlap: &Overlap) -> Result<usize, MockError> {
    use arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;
    let mut pairs: Vec<(i64, i64, i64)> = rows
        .iter()
        .filter(|r| matches!(r.kind, RowKind::Star | RowKind::BadFiberStar))
        .filter_map(|r| {
            let gaia = r.gaia_source_id?;
            Some((*overlap.obsid.get(&gaia)?, r.targetid, gaia))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let col = |f: fn(&(i64, i64, i64)) -> i64| -> ArrayRef { Arc::new(pairs.iter().map(f).collect::<Int64Array>()) };
    let columns = vec![col(|p| p.0), col(|p| p.1), col(|p| p.2)];
    let csv = pairs.iter().map(|p| vec![p.0.to_string(), p.1.to_string(), p.2.to_string()]);
    super::label_files::write_table_files(dir, "crossmatch", crate::schema::crossmatch().to_arrow(0), columns, csv)?;
    Ok(pairs.len())
}

pub fn write_desi_labels(dir: &Path, rows: &[DesiMockRow]) -> Result<(), MockError> {
    use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let schema = crate::schema::mock_desi_labels().to_arrow(0);
    let star = |r: &DesiMockRow| matches!(r.kind, RowKind::Star | RowKind::BadFiberStar);
    let spectype = |r: &DesiMockRow| match r.kind {
        RowKind::Star | RowKind::BadFiberStar | RowKind::Unassigned => "STAR",
        RowKind::Qso => "QSO",
        _ => "GALAXY",
    };
    let success = |r: &DesiMockRow| r.kind == RowKind::Star && r.corruption.is_none();
    let opt = |f: &dyn Fn(&DesiMockRow) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match field.name().as_str() {
                "TARGETID" => Arc::new(rows.iter().map(|r| Some(r.targetid)).collect::<Int64Array>()),
                "KIND" => Arc::new(rows.iter().map(|r| Some(r.kind.as_str())).collect::<StringArray>()),
                "FILE" => Arc::new(rows.iter().map(|r| Some(r.file.as_str())).collect::<StringArray>()),
                "HEALPIX" => Arc::new(rows.iter().map(|r| Some(r.healpix as i64)).collect::<Int64Array>()),
                "LIBRARY_ID" => Arc::new(rows.iter().map(|r| r.library_id).collect::<Int64Array>()),
                "GAIA_SOURCE_ID" => Arc::new(rows.iter().map(|r| r.gaia_source_id).collect::<Int64Array>()),
                "TARGET_RA" => opt(&|r| Some(r.ra)),
                "TARGET_DEC" => opt(&|r| Some(r.dec)),
                "RR_SPECTYPE" => Arc::new(rows.iter().map(|r| Some(spectype(r))).collect::<StringArray>()),
                "RR_Z" => opt(&|r| Some(r.z)),
                "VRAD" => opt(&|r| star(r).then_some(r.z * C_KMS)),
                "TEFF" => opt(&|r| r.catalog.map(|l| l.teff)),
                "LOGG" => opt(&|r| r.catalog.map(|l| l.logg)),
                "FEH" => opt(&|r| r.catalog.map(|l| l.feh)),
                "TEFF_ERR" => opt(&|r| r.catalog_err.map(|l| l.teff)),
                "LOGG_ERR" => opt(&|r| r.catalog_err.map(|l| l.logg)),
                "FEH_ERR" => opt(&|r| r.catalog_err.map(|l| l.feh)),
                "TEFF_TRUE" => opt(&|r| r.truth.map(|l| l.teff)),
                "LOGG_TRUE" => opt(&|r| r.truth.map(|l| l.logg)),
                "FEH_TRUE" => opt(&|r| r.truth.map(|l| l.feh)),
                "SN_R" => opt(&|r| Some(r.snr_r)),
                "SUCCESS" => Arc::new(rows.iter().map(|r| Some(success(r))).collect::<BooleanArray>()),
                "CORRUPTION" => Arc::new(
                    rows.iter()
                        .map(|r| r.corruption.filter(|c| *c != Corruption::NanFlux || star(r)).map(Corruption::as_str))
                        .collect::<StringArray>(),
                ),
                other => panic!("column '{other}' of schemas/mock_desi_labels.toml has no writer"),
            }
        })
        .collect();
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    let csv_rows = rows.iter().map(|r| {
        vec![
            r.targetid.to_string(),
            r.kind.as_str().into(),
            r.file.clone(),
            r.healpix.to_string(),
            format!("{:.6}", r.ra),
            format!("{:.6}", r.dec),
            spectype(r).into(),
            format!("{:.8}", r.z),
            fmt(star(r).then_some(r.z * C_KMS)),
            r.library_id.map(|i| i.to_string()).unwrap_or_default(),
            r.gaia_source_id.map(|i| i.to_string()).unwrap_or_default(),
            fmt(r.catalog.map(|l| l.teff)),
            fmt(r.catalog.map(|l| l.logg)),
            fmt(r.catalog.map(|l| l.feh)),
            fmt(r.catalog_err.map(|l| l.teff)),
            fmt(r.catalog_err.map(|l| l.logg)),
            fmt(r.catalog_err.map(|l| l.feh)),
            fmt(r.truth.map(|l| l.teff)),
            fmt(r.truth.map(|l| l.logg)),
            fmt(r.truth.map(|l| l.feh)),
            format!("{:.2}", r.snr_r),
            success(r).to_string(),
            r.corruption
                .filter(|c| *c == Corruption::Truncated || star(r))
                .map(Corruption::as_str)
                .unwrap_or("")
                .into(),
        ]
    });
    super::label_files::write_label_files(dir, schema, columns, csv_rows)
}
