//! Tolerant access to FITS files and headers: optional keys, survey sentinels, gzip sniffing.

use super::error::ReadError;
use fitsio::FitsFile;
use fitsio::hdu::{FitsHdu, HduInfo};
use std::io::Read;
use std::path::Path;

/// Values surveys write for "missing" (LAMOST −999, −9999, −274 and 99.0 magnitudes are not used here).
const SENTINELS: &[f64] = &[-999.0, -9999.0, -274.0];

/// True when the file starts with the gzip magic bytes (1f 8b), whatever its name says.
pub fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = std::fs::File::open(path)?;
    let n = f.read(&mut magic)?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// A header keyword as trimmed text; None when absent or blank.
pub fn key_string(f: &mut FitsFile, hdu: &FitsHdu, name: &str) -> Option<String> {
    let s: String = hdu.read_key(f, name).ok()?;
    let s = s.trim().trim_matches('\'').trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A numeric keyword, parsed from its text so that odd types and sentinels are handled in one place.
pub fn key_f64(f: &mut FitsFile, hdu: &FitsHdu, name: &str) -> Option<f64> {
    let v: f64 = key_string(f, hdu, name)?.replace(['D', 'd'], "E").parse().ok()?;
    (v.is_finite() && !SENTINELS.contains(&v)).then_some(v)
}

pub fn key_i64(f: &mut FitsFile, hdu: &FitsHdu, name: &str) -> Option<i64> {
    let s = key_string(f, hdu, name)?;
    s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().filter(|v| v.fract() == 0.0).map(|v| v as i64))
}

/// Names of the columns of a table HDU (empty for images).
pub fn column_names(hdu: &FitsHdu) -> Vec<String> {
    match &hdu.info {
        HduInfo::TableInfo { column_descriptions, .. } => column_descriptions.iter().map(|c| c.name.clone()).collect(),
        _ => vec![],
    }
}

pub fn table_rows(hdu: &FitsHdu) -> usize {
    match &hdu.info {
        HduInfo::TableInfo { num_rows, .. } => *num_rows,
        _ => 0,
    }
}

/// Image shape in C order (slowest axis first), or None for tables.
pub fn image_shape(hdu: &FitsHdu) -> Option<Vec<usize>> {
    match &hdu.info {
        HduInfo::ImageInfo { shape, .. } => Some(shape.clone()),
        _ => None,
    }
}

/// FITS files are sequences of 2880-byte blocks.
const FITS_BLOCK: u64 = 2880;

/// Checks that an uncompressed FITS file holds every byte its headers promise. cfitsio opens a
/// truncated file happily and only fails (or, for a missing trailing HDU, silently does not see it)
/// later, so catch it up front with a reason that says what happened.
pub fn check_not_truncated(f: &mut FitsFile, path: &Path) -> Result<(), String> {
    use fitsio::sys::{ffghadll, ffmahd, ffthdu};
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let (mut status, mut nhdu, mut hdutype) = (0, 0, 0);
    let (mut head_start, mut data_start, mut data_end) = (0i64, 0i64, 0i64);
    // SAFETY: the pointer comes from a live FitsFile we hold mutably; cfitsio reports errors in `status`.
    unsafe {
        let fptr = f.as_raw();
        ffthdu(fptr, &mut nhdu, &mut status);
        ffmahd(fptr, nhdu, &mut hdutype, &mut status);
        ffghadll(fptr, &mut head_start, &mut data_start, &mut data_end, &mut status);
        let mut back = 0;
        ffmahd(fptr, 1, &mut hdutype, &mut back);
    }
    if status != 0 {
        return Err(format!("truncated or corrupt: cfitsio status {status} while locating the last HDU"));
    }
    let end = data_end as u64;
    if end > size {
        return Err(format!("truncated: HDU {nhdu} ends at byte {end} but the file has {size} bytes"));
    }
    if size - end >= FITS_BLOCK {
        return Err(format!("truncated: {} bytes after the last complete HDU ({nhdu}) look like a partial HDU", size - end));
    }
    Ok(())
}

/// Opens a survey file for reading: sniffs gzip, opens with cfitsio, and for uncompressed files
/// checks that no HDU is cut short. Returns the handle and whether the file was gzip'd.
pub fn open_fits(path: &Path) -> Result<(FitsFile, bool), ReadError> {
    let gzip = is_gzip(path).map_err(|_| ReadError::NotFound)?;
    let mut f = FitsFile::open(path)
        .map_err(|e| ReadError::Open { gzip: if gzip { "gzip" } else { "not gzip" }, message: e.to_string() })?;
    if !gzip {
        check_not_truncated(&mut f, path).map_err(ReadError::Truncated)?;
    }
    Ok((f, gzip))
}
