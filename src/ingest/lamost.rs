//! LAMOST LRS single-spectrum files, both layouts (LAMOST DR data release documentation, LRS FITS format):
//! (A) primary 5×N float32 image: flux, ivar, wavelength, andmask, ormask;
//! (B) empty primary + `COADD` binary table with one row of N-element columns.
//! The layout is detected from the structure, gzip from the magic bytes, N from the header.

use super::error::ReadError;
use super::record::{FileOutcome, Level, ReportRow, SpectrumMeta, SpectrumRecord, Status, SurveyIds};
use crate::fits::cfitsio;
use crate::fits::file::{FitsHeader, OpenedFits, open_fits, read_checked};
use crate::preprocess::Preprocessor;
use crate::spectrum::Arm;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LamostLayout {
    PrimaryImage,
    CoaddTable,
}

/// One LAMOST spectrum as read, before preprocessing.
#[derive(Debug, Clone)]
pub struct LamostSpectrum {
    pub layout: LamostLayout,
    pub gzip: bool,
    pub meta: SpectrumMeta,
    pub arm: Arm,
}

/// Reads header and data of one LAMOST LRS file.
pub fn read_lamost(path: &Path, display_path: &str) -> Result<LamostSpectrum, ReadError> {
    let (mut f, gzip) = open_fits(path)?;
    let (layout, meta, arm) = read_checked(&mut f, path, gzip, |f| read_layout_and_header(f, display_path))?;
    Ok(LamostSpectrum { layout, gzip, meta, arm })
}

fn read_layout_and_header(
    f: &mut OpenedFits,
    display_path: &str,
) -> Result<(LamostLayout, SpectrumMeta, Arm), ReadError> {
    // Header first, while the primary HDU is current: moving back to it later re-parses it.
    let h = FitsHeader::read_current(f)?;
    let shape = cfitsio::image_shape(f).map_err(|m| ReadError::fits("primary HDU", m))?;
    // Layout B keeps stale NAXISn cards, so trust the parsed NAXIS, not the NAXISn keywords alone.
    let layout = if shape.len() == 2 && shape[0] == 5 { LamostLayout::PrimaryImage } else { LamostLayout::CoaddTable };
    let (wavelength, flux, ivar, ormask) = match layout {
        LamostLayout::PrimaryImage => {
            let npix = shape[1];
            let data = cfitsio::read_image_f32(f, 5 * npix).map_err(|m| ReadError::fits("primary image", m))?;
            let row = |r: usize| data[r * npix..(r + 1) * npix].to_vec();
            (row(2), row(0), row(1), row(4))
        }
        LamostLayout::CoaddTable => {
            // COADD is HDU 1 in every file seen; check that first, then search by name.
            let at_one = cfitsio::move_to(f, 1) && cfitsio::extname(f).as_deref() == Some("COADD");
            if !at_one {
                cfitsio::move_to_table(f, "COADD").map_err(|_| ReadError::UnknownLamostLayout)?;
            }
            let mut read = |name: &str| -> Result<Vec<f32>, ReadError> {
                cfitsio::read_column_f32(f, name)
                    .map_err(|m| ReadError::fits(format!("COADD column {name}"), m))?
                    .ok_or_else(|| ReadError::MissingColumn { hdu: "COADD".into(), column: name.into() })
            };
            (read("WAVELENGTH")?, read("FLUX")?, read("IVAR")?, read("ORMASK")?)
        }
    };
    let npix = wavelength.len();
    if npix < 2 || flux.len() != npix || ivar.len() != npix || ormask.len() != npix {
        return Err(ReadError::shape(format!(
            "wavelength/flux/ivar/ormask lengths {npix}/{}/{}/{} differ or are empty",
            flux.len(),
            ivar.len(),
            ormask.len()
        )));
    }
    if !wavelength.windows(2).all(|w| w[1] > w[0]) {
        return Err(ReadError::shape("wavelength row does not increase monotonically"));
    }

    let obsid = h.i64("OBSID");
    let release = h.string("DATA_V").unwrap_or_else(|| "LAMOST".into());
    let class = h.string("CLASS").unwrap_or_else(|| "UNKNOWN".into());
    let z = h.f64("Z");
    let fiber_mask = h.i64("FIBERMAS").or_else(|| h.i64("FIB_MASK")).map(|v| v as i32);
    let snr = ["SNRU", "SNRG", "SNRR", "SNRI", "SNRZ"].map(|k| h.f64(k).map(|v| v as f32));
    let release_tag = release.trim_start_matches("LAMOST").trim().replace(' ', "_");
    let designation = h.string("DESIG");
    let int32 = |k: &str| h.i64(k).and_then(|v| i32::try_from(v).ok());
    let ids = SurveyIds {
        star_id: SurveyIds::lamost_star_id(designation.as_deref(), obsid),
        lmjd: int32("LMJD"),
        planid: h.string("PLANID"),
        spid: int32("SPID"),
        fiberid: int32("FIBERID"),
        designation,
        ..Default::default()
    };
    let meta = SpectrumMeta {
        spectrum_id: format!(
            "lamost-{}-{}",
            if release_tag.is_empty() { "unknown" } else { &release_tag },
            obsid.unwrap_or(-1)
        ),
        survey: "lamost",
        release,
        source_id: obsid.unwrap_or(-1),
        obsid,
        targetid: None,
        ra: h.f64("RA").unwrap_or(f64::NAN),
        dec: h.f64("DEC").unwrap_or(f64::NAN),
        source_path: display_path.to_string(),
        source_row: 0,
        object_class: class,
        object_subclass: h.string("SUBCLASS"),
        z,
        z_err: h.f64("Z_ERR"),
        zwarn: None,
        selection_method: "lamost_class",
        fiber_mask,
        snr_ugriz: snr,
        ids,
        ..Default::default()
    };
    let mask = ormask.iter().map(|&m| if m.is_finite() { m as u32 } else { u32::MAX }).collect();
    let wavelength: std::sync::Arc<[f64]> = wavelength.iter().map(|&w| w as f64).collect();
    let arm = Arm { name: "lrs".into(), wavelength, flux, ivar, mask, lsf_fwhm_angstrom: None };
    Ok((layout, meta, arm))
}

/// Reads, selects (CLASS == STAR) and preprocesses one LAMOST file.
pub fn ingest_lamost_file(input_index: usize, path: &Path, display_path: &str, pre: &Preprocessor) -> FileOutcome {
    let spec = match read_lamost(path, display_path) {
        Ok(s) => s,
        Err(e) => return FileOutcome::file_failed(input_index, display_path, None, e.to_string()),
    };
    let obsid = spec.meta.obsid;
    if spec.meta.obsid.is_none() {
        return FileOutcome::file_failed(input_index, display_path, None, "header has no integer OBSID".into());
    }
    if spec.meta.object_class != "STAR" {
        let reason = format!("not a star (CLASS={})", spec.meta.object_class);
        return FileOutcome::file_skipped(input_index, display_path, obsid, reason);
    }
    match pre.preprocess(vec![spec.arm], spec.meta.z) {
        Ok(prepared) => {
            let spectrum_id = spec.meta.spectrum_id.clone();
            FileOutcome {
                input_index,
                report: vec![ReportRow {
                    input_index: input_index as i64,
                    input_path: display_path.to_string(),
                    level: Level::File,
                    source_row: None,
                    source_id: obsid,
                    status: Status::Written,
                    reason: None,
                    spectrum_id: Some(spectrum_id),
                }],
                spectra: vec![SpectrumRecord { meta: spec.meta, prepared }],
            }
        }
        Err(r) => {
            let status = Status::of_rejection(&r);
            let mut out = FileOutcome::file_failed(input_index, display_path, obsid, r.to_string());
            out.report[0].status = status;
            out
        }
    }
}
