//! DESI healpix/tile coadds (and per-exposure `spectra-*` files) with their redrock companions
//! (DESI data model, desidatamodel.readthedocs.io: healpix coadds and redrock files). HDUs and columns are found by name; arms are discovered from the
//! `<ARM>_WAVELENGTH` HDUs; only the rows of selected stars are read from the pixel HDUs.

use super::error::ReadError;
use super::record::{FileOutcome, Level, ReportRow, SpectrumMeta, SpectrumRecord, Status, SurveyIds};
use super::select::{RedrockRow, SelectionMethod, SelectionRules, TargetRow};
use crate::fits::cfitsio;
use crate::fits::file::{FitsHeader, OpenedFits, column_names, image_shape, open_fits, read_checked, table_rows};
use crate::fits::raw_image::{Pixels, RawImage};
use crate::preprocess::Preprocessor;
use crate::spectrum::Arm;
use fitsio::FitsFile;
use fitsio::hdu::FitsHdu;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arms as DESI names them, with a nominal LSF FWHM (Å) from the RESOLUTION matrices of real coadds
/// (b 1.5–1.7, r ≈ 1.5, z 1.7–1.9 Å), used only when degrading resolution.
const ARMS: &[(&str, f64)] = &[("B", 1.6), ("R", 1.5), ("Z", 1.8), ("BRZ", 1.6)];

/// File-level facts shared by every target of a coadd.
#[derive(Debug, Clone, Default)]
pub struct DesiFileInfo {
    pub specprod: String,
    pub survey: String,
    pub program: String,
    pub spgrp: String,
    pub spgrpval: String,
    /// TILEID of a tile coadd.
    pub tileid: Option<i32>,
    /// Per-exposure `spectra-*` file (rows are exposures, FIBERSTATUS instead of COADD_FIBERSTATUS).
    pub per_exposure: bool,
}

/// The redrock companion: `coadd-X.fits` / `spectra-X.fits` → `redrock-X.fits` in the same directory.
pub fn redrock_companion(coadd: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let name = coadd.file_name()?.as_bytes();
    let rest = name.strip_prefix(b"coadd-").or_else(|| name.strip_prefix(b"spectra-"))?;
    let companion = [b"redrock-".as_slice(), rest].concat();
    Some(coadd.with_file_name(std::ffi::OsString::from_vec(companion)))
}

fn read_info(h: &FitsHeader, per_exposure: bool) -> DesiFileInfo {
    // SPECPROD is recorded as a DEPNAMnn/DEPVERnn pair, not as its own keyword.
    let specprod = (0..100)
        .map_while(|i| h.string(&format!("DEPNAM{i:02}")).map(|name| (name, i)))
        .find(|(name, _)| name == "SPECPROD")
        .and_then(|(_, i)| h.string(&format!("DEPVER{i:02}")))
        .or_else(|| h.string("SPECPROD"))
        .unwrap_or_else(|| "unknown".into());
    let or_unknown = |k: &str| h.string(k).unwrap_or_else(|| "unknown".into());
    DesiFileInfo {
        specprod,
        survey: or_unknown("SURVEY"),
        program: or_unknown("PROGRAM"),
        spgrp: or_unknown("SPGRP"),
        spgrpval: h.string("SPGRPVAL").or_else(|| h.string("TILEID")).unwrap_or_else(|| "0".into()),
        tileid: h.i64("TILEID").and_then(|t| i32::try_from(t).ok()),
        per_exposure,
    }
}

/// Reads an optional column of a table HDU; None when the column does not exist.
fn opt_col<T: fitsio::tables::ReadsCol>(
    f: &mut FitsFile,
    hdu: &FitsHdu,
    cols: &[String],
    name: &str,
) -> Result<Option<Vec<T>>, ReadError> {
    if !cols.iter().any(|c| c == name) {
        return Ok(None);
    }
    hdu.read_col::<T>(f, name).map(Some).map_err(|e| ReadError::fits(format!("column {name}"), e))
}

fn req_col<T: fitsio::tables::ReadsCol>(
    f: &mut FitsFile,
    hdu: &FitsHdu,
    hdu_name: &str,
    cols: &[String],
    name: &str,
) -> Result<Vec<T>, ReadError> {
    opt_col(f, hdu, cols, name)?.ok_or_else(|| ReadError::MissingColumn { hdu: hdu_name.into(), column: name.into() })
}

/// FIBERMAP rows with everything selection and the output need.
#[derive(Debug, Clone, Default)]
struct Fibermap {
    rows: Vec<TargetRow>,
    ra: Vec<f64>,
    dec: Vec<f64>,
    bgs_target: Vec<Option<i64>>,
    scnd_target: Vec<Option<i64>>,
    expid: Vec<Option<i64>>,
    ref_id: Vec<Option<i64>>,
    ref_cat: Vec<Option<String>>,
    /// Gaia G, BP, RP mean magnitudes per row.
    gaia_mags: Vec<[Option<f32>; 3]>,
}

/// HDUs of one file by EXTNAME (see [`cfitsio::hdu_names`]).
struct HduIndex(HashMap<String, usize>);

impl HduIndex {
    fn read(f: &mut FitsFile) -> Self {
        Self(cfitsio::hdu_names(f))
    }

    fn open(&self, f: &mut FitsFile, name: &str) -> Result<FitsHdu, ReadError> {
        let missing = || ReadError::MissingHdu(name.to_string());
        let number = *self.0.get(name).ok_or_else(missing)?;
        f.hdu(number).map_err(|e| ReadError::fits(name, e))
    }
}

fn read_fibermap(f: &mut FitsFile, hdus: &HduIndex, info: &DesiFileInfo) -> Result<Fibermap, ReadError> {
    let hdu = hdus.open(f, "FIBERMAP")?;
    let cols = column_names(&hdu);
    let n = table_rows(&hdu);
    let targetid: Vec<i64> = req_col(f, &hdu, "FIBERMAP", &cols, "TARGETID")?;
    let ra: Vec<f64> = req_col(f, &hdu, "FIBERMAP", &cols, "TARGET_RA")?;
    let dec: Vec<f64> = req_col(f, &hdu, "FIBERMAP", &cols, "TARGET_DEC")?;
    let objtype: Vec<String> = opt_col(f, &hdu, &cols, "OBJTYPE")?.unwrap_or_else(|| vec!["TGT".into(); n]);
    let status_col = if info.per_exposure { "FIBERSTATUS" } else { "COADD_FIBERSTATUS" };
    let fiber_status: Vec<i64> = req_col(f, &hdu, "FIBERMAP", &cols, status_col)?;
    // SV files keep their targeting bits in prefixed columns; the unprefixed ones are mostly 0 there.
    let prefix = match info.survey.as_str() {
        s @ ("sv1" | "sv2" | "sv3") => format!("{}_", s.to_uppercase()),
        "cmx" => "CMX_".into(),
        _ => String::new(),
    };
    let mut bits = |name: &str| -> Result<Vec<Option<i64>>, ReadError> {
        let col = opt_col::<i64>(f, &hdu, &cols, &format!("{prefix}{name}"))?.or(opt_col::<i64>(f, &hdu, &cols, name)?);
        Ok(col.map(|v| v.into_iter().map(Some).collect()).unwrap_or_else(|| vec![None; n]))
    };
    let desi_target = bits("DESI_TARGET")?;
    let bgs_target = bits("BGS_TARGET")?;
    let mws_target = bits("MWS_TARGET")?;
    let scnd_target = bits("SCND_TARGET")?;
    let expid: Vec<Option<i64>> = match (info.per_exposure, opt_col::<i64>(f, &hdu, &cols, "EXPID")?) {
        (true, Some(v)) => v.into_iter().map(Some).collect(),
        _ => vec![None; n],
    };
    // Cross-match keys; DESI writes 0 / blank where a target has no reference-catalogue match.
    let ref_id: Vec<Option<i64>> = match opt_col::<i64>(f, &hdu, &cols, "REF_ID")? {
        Some(v) => v.into_iter().map(|id| (id > 0).then_some(id)).collect(),
        None => vec![None; n],
    };
    let ref_cat: Vec<Option<String>> = match opt_col::<String>(f, &hdu, &cols, "REF_CAT")? {
        Some(v) => v.into_iter().map(|c| Some(c.trim().to_string()).filter(|c| !c.is_empty())).collect(),
        None => vec![None; n],
    };
    let mut gaia_mags = vec![[None; 3]; n];
    for (k, band) in ["G", "BP", "RP"].iter().enumerate() {
        if let Some(v) = opt_col::<f32>(f, &hdu, &cols, &format!("GAIA_PHOT_{band}_MEAN_MAG"))? {
            for (row, m) in gaia_mags.iter_mut().zip(v) {
                row[k] = (m.is_finite() && m > 0.0).then_some(m);
            }
        }
    }
    let lens = [targetid.len(), ra.len(), dec.len(), objtype.len(), fiber_status.len(), ref_id.len(), ref_cat.len()];
    if lens.iter().any(|&l| l != n) {
        return Err(ReadError::shape(format!("FIBERMAP columns have lengths {lens:?}, expected {n} rows")));
    }
    let rows = (0..n)
        .map(|i| TargetRow {
            targetid: targetid[i],
            objtype: objtype[i].trim().to_string(),
            fiber_status: fiber_status[i] as i32,
            desi_target: desi_target[i],
            mws_target: mws_target[i],
        })
        .collect();
    Ok(Fibermap { rows, ra, dec, bgs_target, scnd_target, expid, ref_id, ref_cat, gaia_mags })
}

/// SCORES MEDIAN_COADD_SNR_{B,R,Z}, when present.
fn read_scores(f: &mut FitsFile, hdus: &HduIndex, n: usize) -> [Vec<Option<f32>>; 3] {
    let mut out = [vec![None; n], vec![None; n], vec![None; n]];
    let Ok(hdu) = hdus.open(f, "SCORES") else { return out };
    let cols = column_names(&hdu);
    for (k, arm) in ["B", "R", "Z"].iter().enumerate() {
        if let Ok(Some(v)) = opt_col::<f32>(f, &hdu, &cols, &format!("MEDIAN_COADD_SNR_{arm}"))
            && v.len() == n
        {
            out[k] = v.into_iter().map(|x| x.is_finite().then_some(x)).collect();
        }
    }
    out
}

/// Reads the REDSHIFTS table of a redrock file, keyed by TARGETID.
pub fn read_redrock(path: &Path) -> Result<HashMap<i64, RedrockRow>, ReadError> {
    let err = |reason: String| ReadError::Redrock { path: path.display().to_string(), reason };
    let mut f = FitsFile::open(path).map_err(|e| err(format!("cannot open as FITS: {e}")))?;
    let hdu = f.hdu("REDSHIFTS").map_err(|_| err("missing HDU REDSHIFTS".into()))?;
    let cols = column_names(&hdu);
    let col = |name: &str| -> Result<(), ReadError> {
        if cols.iter().any(|c| c == name) { Ok(()) } else { Err(err(format!("missing column {name}"))) }
    };
    for c in ["TARGETID", "Z", "ZERR", "ZWARN", "SPECTYPE", "SUBTYPE"] {
        col(c)?;
    }
    let read_err = |e: fitsio::errors::Error| err(e.to_string());
    let targetid: Vec<i64> = hdu.read_col(&mut f, "TARGETID").map_err(read_err)?;
    let z: Vec<f64> = hdu.read_col(&mut f, "Z").map_err(read_err)?;
    let zerr: Vec<f64> = hdu.read_col(&mut f, "ZERR").map_err(read_err)?;
    let zwarn: Vec<i64> = hdu.read_col(&mut f, "ZWARN").map_err(read_err)?;
    let spectype: Vec<String> = hdu.read_col(&mut f, "SPECTYPE").map_err(read_err)?;
    let subtype: Vec<String> = hdu.read_col(&mut f, "SUBTYPE").map_err(read_err)?;
    let n = targetid.len();
    if [z.len(), zerr.len(), zwarn.len(), spectype.len(), subtype.len()].iter().any(|&l| l != n) {
        return Err(err("REDSHIFTS columns have different lengths".into()));
    }
    Ok((0..n)
        .map(|i| {
            let row = RedrockRow {
                z: z[i],
                zerr: zerr[i],
                zwarn: zwarn[i],
                spectype: spectype[i].trim().to_string(),
                subtype: subtype[i].trim().to_string(),
            };
            (targetid[i], row)
        })
        .collect())
}

/// One arm's HDUs, checked for consistent shapes.
struct ArmHdus {
    name: &'static str,
    lsf_fwhm: f64,
    wavelength: Arc<[f64]>,
    flux: FitsHdu,
    ivar: FitsHdu,
    mask: Option<FitsHdu>,
    /// FLUX, IVAR and MASK where they decode without cfitsio (`raw_image`); None keeps
    /// cfitsio's converting reads for that HDU.
    raw: RawArm,
}

#[derive(Debug, Clone, Copy, Default)]
struct RawArm {
    flux: Option<RawImage>,
    ivar: Option<RawImage>,
    mask: Option<RawImage>,
}

fn find_arms(f: &mut FitsFile, hdus: &HduIndex, nspec: usize) -> Result<Vec<ArmHdus>, ReadError> {
    let mut arms = Vec::new();
    for &(name, lsf_fwhm) in ARMS {
        let Ok(wave_hdu) = hdus.open(f, &format!("{name}_WAVELENGTH")) else { continue };
        let wavelength: Vec<f64> =
            wave_hdu.read_image(f).map_err(|e| ReadError::fits(format!("{name}_WAVELENGTH"), e))?;
        let mut pixel_hdu = |kind: &str| -> Result<(FitsHdu, Option<RawImage>), ReadError> {
            let hdu_name = format!("{name}_{kind}");
            let hdu = hdus.open(f, &hdu_name)?;
            let shape = image_shape(&hdu).unwrap_or_default();
            if shape != [nspec, wavelength.len()] {
                return Err(ReadError::shape(format!(
                    "{hdu_name} has shape {shape:?}, expected [{nspec}, {}] (FIBERMAP rows × {name}_WAVELENGTH)",
                    wavelength.len()
                )));
            }
            // `open` left this HDU current.
            let raw = RawImage::probe(f, nspec, wavelength.len());
            Ok((hdu, raw))
        };
        let (flux, flux_raw) = pixel_hdu("FLUX")?;
        let (ivar, ivar_raw) = pixel_hdu("IVAR")?;
        let (mask, mask_raw) = match pixel_hdu("MASK") {
            Ok((h, raw)) => (Some(h), Some(raw)),
            Err(ReadError::MissingHdu(_)) => (None, None),
            Err(e) => return Err(e),
        };
        if !wavelength.windows(2).all(|w| w[1] > w[0]) {
            return Err(ReadError::shape(format!("{name}_WAVELENGTH does not increase monotonically")));
        }
        let float = |r: Option<RawImage>| r.filter(|r| r.pixels() == Pixels::F32);
        let raw = RawArm {
            flux: float(flux_raw),
            ivar: float(ivar_raw),
            mask: mask_raw.flatten().filter(|r| r.pixels() != Pixels::F32),
        };
        arms.push(ArmHdus { name, lsf_fwhm, wavelength: wavelength.into(), flux, ivar, mask, raw });
    }
    if arms.is_empty() {
        return Err(ReadError::MissingHdu("B_WAVELENGTH/R_WAVELENGTH/Z_WAVELENGTH (no spectrograph arm found)".into()));
    }
    Ok(arms)
}

/// One row of an arm's MASK (empty when the file has none).
fn read_mask_row(f: &mut FitsFile, a: &ArmHdus, row: usize) -> Result<Vec<u32>, ReadError> {
    let what = |k: &str| format!("{}_{k} row {row}", a.name);
    // MASK is uint32 stored as int32 + BZERO 2^31 (cfitsio converts that to u32 by flipping the
    // sign bit: the fast path), or plain int32 in re-written files, where a negative value does not
    // fit u32: then reading as i64 keeps the bit pattern.
    let mask: Vec<u32> = match &a.mask {
        Some(h) => match h.read_rows::<Vec<u32>>(f, row, 1) {
            Ok(m) => m,
            Err(_) => {
                let m: Vec<i64> = h.read_rows(f, row, 1).map_err(|e| ReadError::fits(what("MASK"), e))?;
                m.into_iter().map(|v| v as u32).collect()
            }
        },
        None => vec![],
    };
    Ok(mask)
}

/// Whether an arm observed over `wavelength` (Å) can put light on the output grid [lo, hi] (Å,
/// rest frame): its range shifted by any radial velocity a star can have (1 %, 3,000 km/s, twice
/// the selection's limit) and widened by a resolution-degradation kernel (20 Å).
fn reaches(wavelength: &[f64], lo: f64, hi: f64) -> bool {
    let (Some(first), Some(last)) = (wavelength.first(), wavelength.last()) else { return false };
    first / 1.01 - 20.0 <= hi && last / 0.99 + 20.0 >= lo
}

/// A header value, unless read_info had to write "unknown" for it.
fn known(v: &str) -> Option<String> {
    (v != "unknown").then(|| v.to_string())
}

/// Selected rows whose pixels are read together (bounds the memory: ~6 MB for three arms).
const PIXEL_BLOCK_ROWS: usize = 64;

/// The arms of several FIBERMAP rows, HDU by HDU (each FLUX, IVAR and MASK HDU made current once
/// for all the rows); one result per row, in the order of `rows`.
fn read_arm_rows(f: &mut OpenedFits, arms: &[ArmHdus], rows: &[usize]) -> Vec<Result<Vec<Arm>, ReadError>> {
    let mut out: Vec<Result<Vec<Arm>, ReadError>> = rows.iter().map(|_| Ok(Vec::with_capacity(arms.len()))).collect();
    let mut bytes = Vec::new();
    for a in arms {
        let what = |k: &str, row: usize| format!("{}_{k} row {row}", a.name);
        let io = |k: &'static str, r: usize| move |e: std::io::Error| ReadError::fits(what(k, r), e);
        let mut floats =
            |hdu: &FitsHdu, raw: Option<RawImage>, kind: &'static str| -> Vec<Result<Vec<f32>, ReadError>> {
                rows.iter()
                    .map(|&r| match raw {
                        Some(raw) => raw.read_f32_row(f, r, &mut bytes).map_err(io(kind, r)),
                        None => hdu.read_rows(f, r, 1).map_err(|e| ReadError::fits(what(kind, r), e)),
                    })
                    .collect()
            };
        let flux = floats(&a.flux, a.raw.flux, "FLUX");
        let ivar = floats(&a.ivar, a.raw.ivar, "IVAR");
        let mask: Vec<Result<Vec<u32>, ReadError>> = rows
            .iter()
            .map(|&r| match a.raw.mask {
                Some(raw) => raw.read_u32_row(f, r, &mut bytes).map_err(io("MASK", r)),
                None => read_mask_row(f, a, r),
            })
            .collect();
        for (((o, fl), iv), m) in out.iter_mut().zip(flux).zip(ivar).zip(mask) {
            if let Ok(arms_of_row) = o {
                match (fl, iv, m) {
                    (Ok(flux), Ok(ivar), Ok(mask)) => arms_of_row.push(Arm {
                        name: a.name.to_lowercase(),
                        wavelength: a.wavelength.clone(),
                        flux,
                        ivar,
                        mask,
                        lsf_fwhm_angstrom: Some(a.lsf_fwhm),
                    }),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => *o = Err(e),
                }
            }
        }
    }
    out
}

/// Options for reading DESI files.
#[derive(Debug, Clone, Default)]
pub struct DesiOptions {
    pub rules: SelectionRules,
}

/// Reads one coadd (and its redrock companion), selects stars, preprocesses them.
pub fn ingest_desi_file(
    input_index: usize,
    path: &Path,
    display_path: &str,
    pre: &Preprocessor,
    opts: &DesiOptions,
) -> FileOutcome {
    match ingest_desi_inner(input_index, path, display_path, pre, opts) {
        Ok(o) => o,
        Err(e) => FileOutcome::file_failed(input_index, display_path, None, e.to_string()),
    }
}

fn ingest_desi_inner(
    input_index: usize,
    path: &Path,
    display_path: &str,
    pre: &Preprocessor,
    opts: &DesiOptions,
) -> Result<FileOutcome, ReadError> {
    let (mut f, gzip) = open_fits(path)?;
    let per_exposure = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("spectra-"));
    let (info, fibermap, arms, scores) = read_checked(&mut f, path, gzip, |f| {
        let info = read_info(&FitsHeader::read_current(f)?, per_exposure);
        let hdus = HduIndex::read(f);
        let fibermap = read_fibermap(f, &hdus, &info)?;
        // An empty coadd has no pixel data to check; it is skipped below with "0 targets".
        let arms = if fibermap.rows.is_empty() { vec![] } else { find_arms(f, &hdus, fibermap.rows.len())? };
        let scores = read_scores(f, &hdus, fibermap.rows.len());
        Ok::<_, ReadError>((info, fibermap, arms, scores))
    })?;
    let nspec = fibermap.rows.len();
    // Arms that cannot reach the output grid (the z arm for the SpecCLIP window) are not read at
    // all: a third of the pixel reads and all their preprocessing saved.
    let grid = &pre.config().grid;
    let (grid_lo, grid_hi) = (grid.first_angstrom(), grid.last_angstrom());
    let arms: Vec<ArmHdus> = arms.into_iter().filter(|a| reaches(&a.wavelength, grid_lo, grid_hi)).collect();
    // A damaged redrock file fails every target (by name) rather than silently switching to
    // targeting-bit selection.
    let (redrock, redrock_error) = match redrock_companion(path).filter(|p| p.exists()) {
        Some(p) => match read_redrock(&p) {
            Ok(rr) => (Some(rr), None),
            Err(e) => (None, Some(e.to_string())),
        },
        None => (None, None),
    };

    let target_row = |row: usize, status: Status, reason: Option<String>, spectrum_id: Option<String>| ReportRow {
        input_index: input_index as i64,
        input_path: display_path.to_string(),
        level: Level::Target,
        source_row: Some(row as i32),
        source_id: Some(fibermap.rows[row].targetid),
        status,
        reason,
        spectrum_id,
    };
    let mut report = Vec::with_capacity(nspec + 1);
    let mut spectra = Vec::new();
    // Selection first, from the tables alone.
    let mut selected = Vec::new();
    for (row, t) in fibermap.rows.iter().enumerate() {
        if let Some(e) = &redrock_error {
            report.push(target_row(row, Status::Failed, Some(e.clone()), None));
            continue;
        }
        let rr = redrock.as_ref().map(|m| m.get(&t.targetid));
        match opts.rules.select_star(t, rr) {
            Ok(method) => selected.push((row, method)),
            Err(reason) => report.push(target_row(row, Status::Skipped, Some(reason), None)),
        }
    }
    // Then the selected rows' pixels, a block of rows at a time, each HDU's rows read together:
    // cfitsio re-reads an HDU's header whenever it moves to it, which per row and HDU costs more
    // than the pixels.
    let mut blocks = selected.chunks(PIXEL_BLOCK_ROWS);
    let mut block_rows: std::vec::IntoIter<Result<Vec<Arm>, ReadError>> = Vec::new().into_iter();
    for (k, &(row, method)) in selected.iter().enumerate() {
        if k % PIXEL_BLOCK_ROWS == 0 {
            let rows: Vec<usize> =
                blocks.next().expect("one block per PIXEL_BLOCK_ROWS rows").iter().map(|r| r.0).collect();
            block_rows = read_arm_rows(&mut f, &arms, &rows).into_iter();
        }
        let arm_rows = block_rows.next().expect("one result per selected row");
        let t = &fibermap.rows[row];
        let rr = redrock.as_ref().map(|m| m.get(&t.targetid));
        if arms.is_empty() {
            let reason = crate::preprocess::Rejection::NoGridOverlap { lo: grid_lo, hi: grid_hi };
            report.push(target_row(row, Status::of_rejection(&reason), Some(reason.to_string()), None));
            continue;
        }
        let arm_rows = match arm_rows {
            Ok(a) => a,
            Err(e) => {
                report.push(target_row(row, Status::Failed, Some(e.to_string()), None));
                continue;
            }
        };
        // Broken data is a failure, not a shortage of good pixels.
        if arm_rows.iter().all(|a| crate::preprocess::all_flux_non_finite(&a.flux)) {
            let reason = crate::preprocess::Rejection::AllFluxNonFinite.to_string();
            report.push(target_row(row, Status::Failed, Some(reason), None));
            continue;
        }
        let mut arm_data = Vec::with_capacity(arms.len());
        let mut unused = Vec::new();
        for (a, arm) in arms.iter().zip(arm_rows) {
            let mask = arm.mask.iter().map(|&m| m == 0).chain(std::iter::repeat(true));
            let good: usize = arm
                .ivar
                .iter()
                .zip(&arm.flux)
                .zip(mask)
                .map(|((iv, f), unmasked)| usize::from((*iv > 0.0) & f.is_finite() & unmasked))
                .sum();
            let frac = good as f64 / arm.len().max(1) as f64;
            if frac >= opts.rules.min_arm_good_fraction {
                arm_data.push(arm);
            } else {
                unused.push(format!("{} arm {:.0}% usable", a.name.to_lowercase(), 100.0 * frac));
            }
        }
        if arm_data.is_empty() {
            let reason = format!(
                "no arm with enough usable pixels (need {:.0}%; {})",
                100.0 * opts.rules.min_arm_good_fraction,
                unused.join(", ")
            );
            report.push(target_row(row, Status::Skipped, Some(reason), None));
            continue;
        }
        let rr = rr.flatten();
        let z = rr.map(|r| r.z);
        let mut spectrum_id = format!(
            "desi-{}-{}-{}-{}{}-{}",
            info.specprod, info.survey, info.program, info.spgrp, info.spgrpval, t.targetid
        );
        if let Some(expid) = fibermap.expid[row] {
            spectrum_id.push_str(&format!("-exp{expid}"));
        }
        match pre.preprocess(arm_data, z) {
            Ok(prepared) => {
                let note = (!unused.is_empty()).then(|| format!("arms not used: {}", unused.join(", ")));
                report.push(target_row(row, Status::Written, note, Some(spectrum_id.clone())));
                let meta = SpectrumMeta {
                    spectrum_id,
                    survey: "desi",
                    release: info.specprod.clone(),
                    source_id: t.targetid,
                    obsid: None,
                    targetid: Some(t.targetid),
                    ra: fibermap.ra[row],
                    dec: fibermap.dec[row],
                    source_path: display_path.to_string(),
                    source_row: row as i32,
                    object_class: rr.map_or_else(|| "UNKNOWN".to_string(), |r| r.spectype.clone()),
                    object_subclass: rr.map(|r| r.subtype.clone()).filter(|s| !s.is_empty()),
                    z,
                    z_err: rr.map(|r| r.zerr),
                    zwarn: rr.map(|r| r.zwarn),
                    selection_method: match method {
                        SelectionMethod::Redrock => SelectionMethod::Redrock.as_str(),
                        SelectionMethod::MwsTargetBits => SelectionMethod::MwsTargetBits.as_str(),
                    },
                    fiber_mask: None,
                    fiber_status: Some(t.fiber_status),
                    desi_target: t.desi_target,
                    bgs_target: fibermap.bgs_target[row],
                    mws_target: t.mws_target,
                    scnd_target: fibermap.scnd_target[row],
                    snr_ugriz: [None; 5],
                    snr_arm_brz: [scores[0][row], scores[1][row], scores[2][row]],
                    ids: SurveyIds {
                        star_id: t.targetid.to_string(),
                        gaia_source_id: SurveyIds::gaia_from_ref(
                            fibermap.ref_id[row],
                            fibermap.ref_cat[row].as_deref(),
                        ),
                        ref_id: fibermap.ref_id[row],
                        ref_cat: fibermap.ref_cat[row].clone(),
                        gaia_mags: fibermap.gaia_mags[row],
                        desi_survey: known(&info.survey),
                        desi_program: known(&info.program),
                        healpix: (info.spgrp == "healpix").then(|| info.spgrpval.parse().ok()).flatten(),
                        tileid: info.tileid,
                        ..Default::default()
                    },
                };
                spectra.push(SpectrumRecord { meta, prepared });
            }
            Err(r) => report.push(target_row(row, Status::of_rejection(&r), Some(r.to_string()), None)),
        }
    }

    // Target rows in FIBERMAP order, whichever phase decided them.
    report.sort_by_key(|r| r.source_row);
    let count = |s: Status| report.iter().filter(|r| r.status == s).count();
    let (written, skipped, failed) = (count(Status::Written), count(Status::Skipped), count(Status::Failed));
    let file_status = if written > 0 {
        Status::Written
    } else if failed > 0 || redrock_error.is_some() {
        Status::Failed
    } else {
        Status::Skipped
    };
    let selection = match (&redrock, &redrock_error) {
        (Some(_), _) => "redrock",
        (None, Some(_)) => "none (redrock file unreadable)",
        (None, None) => "MWS targeting bits (no redrock file)",
    };
    let file_row = ReportRow {
        input_index: input_index as i64,
        input_path: display_path.to_string(),
        level: Level::File,
        source_row: None,
        source_id: None,
        status: file_status,
        reason: Some(match file_status {
            Status::Written => format!(
                "{written} stars written ({nspec} targets: {skipped} skipped, {failed} failed; selection by {selection})"
            ),
            _ => format!(
                "no star written ({nspec} targets: {skipped} skipped, {failed} failed; selection by {selection})"
            ),
        }),
        spectrum_id: None,
    };
    report.insert(0, file_row);
    Ok(FileOutcome { input_index, report, spectra })
}

/// Reads the arms of one FIBERMAP row as stored (no selection, no masking): for inspection and tests.
pub fn read_target_arms(path: &Path, row: usize) -> Result<Vec<Arm>, ReadError> {
    let (mut f, gzip) = open_fits(path)?;
    let (nspec, arms) = read_checked(&mut f, path, gzip, |f| {
        let hdus = HduIndex::read(f);
        let nspec = table_rows(&hdus.open(f, "FIBERMAP")?);
        Ok::<_, ReadError>((nspec, find_arms(f, &hdus, nspec)?))
    })?;
    if row >= nspec {
        return Err(ReadError::shape(format!("row {row} is beyond the {nspec} FIBERMAP rows")));
    }
    read_arm_rows(&mut f, &arms, &[row]).pop().expect("one result per row")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{GridPreset, LogGrid};

    #[test]
    fn only_arms_that_can_reach_the_grid_are_read() {
        let arm = |lo: f64, hi: f64| vec![lo, hi];
        let (b, r, z) = (arm(3600.0, 5800.0), arm(5760.0, 7620.0), arm(7520.0, 9824.0));
        let specclip = LogGrid::preset(GridPreset::Specclip);
        let (lo, hi) = (specclip.first_angstrom(), specclip.last_angstrom());
        assert!(reaches(&b, lo, hi));
        assert!(!reaches(&r, lo, hi), "the r arm starts 160 Å past the SpecCLIP window");
        assert!(!reaches(&z, lo, hi));
        // An arm starting 110 Å bluer is within the Doppler and kernel margin: read.
        assert!(reaches(&arm(5650.0, 7620.0), lo, hi));
        let full = LogGrid::preset(GridPreset::Lamost);
        assert!([&b, &r, &z].iter().all(|a| reaches(a, full.first_angstrom(), full.last_angstrom())));
        assert!(!reaches(&[], lo, hi));
    }

    /// Every row of every arm, decoded here and by cfitsio, on the real DESI files (coadds and a
    /// per-exposure file), plain and gzip'd (read from memory): the same bits.
    #[test]
    fn raw_rows_match_cfitsio_on_real_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real/desi");
        let tmp = tempfile::tempdir().unwrap();
        let (mut checked, mut masked) = (0, 0);
        for name in ["coadd-sv3-bright-10145.fits", "coadd-4-80613-thru20210324.fits", "spectra-sv3-dark-26065.fits"] {
            let plain = dir.join(name);
            let gz = tmp.path().join(format!("{name}.gz"));
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, &std::fs::read(&plain).unwrap()).unwrap();
            std::fs::write(&gz, enc.finish().unwrap()).unwrap();
            for path in [plain, gz] {
                let (mut f, _) = open_fits(&path).unwrap();
                let hdus = HduIndex::read(&mut f);
                let nspec = table_rows(&hdus.open(&mut f, "FIBERMAP").unwrap());
                let arms = find_arms(&mut f, &hdus, nspec).unwrap();
                assert!(arms.iter().all(|a| a.raw.flux.is_some() && a.raw.ivar.is_some()), "{path:?}: FLUX/IVAR raw");
                // The per-exposure file's MASK is tile-compressed: only cfitsio decodes it.
                let per_exposure = name.starts_with("spectra-");
                assert!(
                    arms.iter().all(|a| a.raw.mask.is_some() != per_exposure),
                    "{path:?}: MASK raw unless compressed"
                );
                let mut via_cfitsio = find_arms(&mut f, &hdus, nspec).unwrap();
                via_cfitsio.iter_mut().for_each(|a| a.raw = RawArm::default());
                let rows: Vec<usize> = (0..nspec).collect();
                let raw = read_arm_rows(&mut f, &arms, &rows);
                let reference = read_arm_rows(&mut f, &via_cfitsio, &rows);
                for (a, b) in raw.into_iter().zip(reference) {
                    let (a, b) = (a.unwrap(), b.unwrap());
                    assert_eq!(a.len(), b.len());
                    for (x, y) in a.iter().zip(&b) {
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&x.flux), bits(&y.flux), "{path:?} {} FLUX", x.name);
                        assert_eq!(bits(&x.ivar), bits(&y.ivar), "{path:?} {} IVAR", x.name);
                        assert_eq!(x.mask, y.mask, "{path:?} {} MASK", x.name);
                        masked += x.mask.iter().filter(|&&m| m != 0).count();
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 30, "{checked} arm rows compared");
        assert!(masked > 0, "some pixels carry mask bits, so the unsigned decoding is exercised");
    }
}
