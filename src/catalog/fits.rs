//! The catalogue as a FITS binary table, for TOPCAT and other FITS tools: one HDU `CATALOG` with
//! TUNITn (units), TUCDn and TCOMMn (the UCD and description conventions STIL/TOPCAT read; long
//! descriptions continue over cards by the long-string convention), and an HDU `FLAG_BITS` that
//! defines every bit of `quality_flags`, with the thresholds as its header keywords.
//!
//! Logarithmic units (dex, log(cm.s**-2)) are not FITS units (astropy warns on them and cannot
//! read them back; its own writer leaves them out too), so their columns carry the unit at the end
//! of TCOMMn instead of a TUNITn.
//!
//! FITS has no nulls for floats but NaN, and no unsigned 32-bit integers: null floats are NaN, null
//! integers (32- and 64-bit) are −1 with TNULLn = −1 on every nullable column, `quality_flags` is a signed 32-bit column (bit 31 is never set),
//! booleans are logical (L) columns.

use super::flags::{ALL, CUTS, FATAL_MASK, Thresholds};
use super::{CatalogError, Result};
use crate::schema::TableSchema;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type};
use fitsio::FitsFile;
use fitsio::tables::{ColumnDataType, ColumnDescription};
use std::path::Path;

pub fn write_fits(path: &Path, batch: &RecordBatch, schema: &TableSchema, thresholds: &Thresholds) -> Result<()> {
    crate::io::write_atomically(path, |tmp| write_fits_at(tmp, batch, schema, thresholds))
}

fn write_fits_at(tmp: &Path, batch: &RecordBatch, schema: &TableSchema, thresholds: &Thresholds) -> Result<()> {
    // cfitsio refuses to create over an existing file: a killed run may have left one.
    let _ = std::fs::remove_file(tmp);
    let e = |e: fitsio::errors::Error| CatalogError::bad(tmp, e.to_string());
    let mut f = FitsFile::create(tmp).open().map_err(e)?;
    let mut descriptions = Vec::new();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let (t, repeat) = match field.data_type() {
            DataType::Utf8 => {
                let s = col.as_string::<i32>();
                (ColumnDataType::String, s.iter().map(|v| v.map_or(0, str::len)).max().unwrap_or(0).max(1))
            }
            DataType::Boolean => (ColumnDataType::Logical, 1),
            DataType::Int32 | DataType::UInt32 => (ColumnDataType::Int, 1),
            DataType::Int64 => (ColumnDataType::LongLong, 1),
            DataType::Float32 => (ColumnDataType::Float, 1),
            _ => (ColumnDataType::Double, 1),
        };
        descriptions.push(ColumnDescription::new(field.name()).with_type(t).that_repeats(repeat).create().map_err(e)?);
    }
    let hdu = f.create_table("CATALOG", &descriptions).map_err(e)?;
    for (k, (field, col)) in batch.schema().fields().iter().zip(batch.columns()).enumerate() {
        let name = field.name().as_str();
        match field.data_type() {
            DataType::Utf8 => {
                let v: Vec<String> = col.as_string::<i32>().iter().map(|s| s.unwrap_or("").to_string()).collect();
                hdu.write_col(&mut f, name, &v).map(|_| ())
            }
            DataType::Boolean => {
                // cfitsio writes logical columns from bytes (TLOGICAL), which fitsio does not
                // expose; its raw call does.
                let v: Vec<i8> = col.as_boolean().iter().map(|b| i8::from(b.unwrap_or(false))).collect();
                write_logical(&mut f, k + 1, &v)
            }
            DataType::Int32 => {
                let a = col.as_primitive::<Int32Type>();
                hdu.write_col(&mut f, name, &a.iter().map(|v| v.unwrap_or(-1)).collect::<Vec<i32>>()).map(|_| ())
            }
            DataType::UInt32 => {
                let a = col.as_primitive::<UInt32Type>();
                hdu.write_col(&mut f, name, &a.values().iter().map(|&v| v as i32).collect::<Vec<i32>>()).map(|_| ())
            }
            DataType::Int64 => {
                // Not the array's values: a null's slot holds whatever the buffer had (0), which
                // is a valid-looking id.
                let a = col.as_primitive::<Int64Type>();
                hdu.write_col(&mut f, name, &a.iter().map(|v| v.unwrap_or(-1)).collect::<Vec<i64>>()).map(|_| ())
            }
            DataType::Float32 => {
                let a = col.as_primitive::<Float32Type>();
                hdu.write_col(&mut f, name, &a.iter().map(|v| v.unwrap_or(f32::NAN)).collect::<Vec<f32>>()).map(|_| ())
            }
            _ => {
                let a = col.as_primitive::<Float64Type>();
                hdu.write_col(&mut f, name, &a.iter().map(|v| v.unwrap_or(f64::NAN)).collect::<Vec<f64>>()).map(|_| ())
            }
        }
        .map_err(e)?;
        let spec = &schema.columns[k];
        let n = k + 1;
        let logarithmic = spec.unit == "dex" || spec.unit.starts_with("log(");
        if !spec.unit.is_empty() && !logarithmic {
            hdu.write_key(&mut f, &format!("TUNIT{n}"), spec.unit.as_str()).map_err(e)?;
        }
        if let Some(ucd) = &spec.ucd {
            hdu.write_key(&mut f, &format!("TUCD{n}"), ucd.as_str()).map_err(e)?;
        }
        let comm = if logarithmic { format!("{} [{}]", spec.description, spec.unit) } else { spec.description.clone() };
        write_long_string(&mut f, &format!("TCOMM{n}"), &comm).map_err(e)?;
        // TNULLn on every nullable integer column, nulls or not, so a reader of any file of the
        // catalogue masks the same value.
        if matches!(field.data_type(), DataType::Int32 | DataType::Int64) && field.is_nullable() {
            hdu.write_key(&mut f, &format!("TNULL{n}"), -1i64).map_err(e)?;
        }
    }
    hdu.write_key(&mut f, "ORIGIN", format!("starpipe {}", crate::VERSION).as_str()).map_err(e)?;
    write_flag_bits(&mut f, thresholds).map_err(e)?;
    drop(f);
    Ok(())
}

/// `FLAG_BITS`: one row per bit of `quality_flags` (BIT, NAME, CLASS, MEANING), the thresholds as keywords.
fn write_flag_bits(f: &mut FitsFile, t: &Thresholds) -> fitsio::errors::Result<()> {
    let text = |name: &str, width: usize| {
        ColumnDescription::new(name).with_type(ColumnDataType::String).that_repeats(width).create()
    };
    let meaning_width = ALL.iter().map(|b| b.description().len()).max().unwrap_or(1);
    let cols = [
        ColumnDescription::new("BIT").with_type(ColumnDataType::Int).create()?,
        text("NAME", 16)?,
        text("CLASS", 8)?,
        text("MEANING", meaning_width)?,
    ];
    let hdu = f.create_table("FLAG_BITS", &cols)?;
    hdu.write_col(f, "BIT", &ALL.iter().map(|b| b.bit() as i32).collect::<Vec<_>>())?;
    hdu.write_col(f, "NAME", &ALL.iter().map(|b| b.name().to_string()).collect::<Vec<_>>())?;
    hdu.write_col(f, "CLASS", &ALL.iter().map(|b| b.class().name().to_string()).collect::<Vec<_>>())?;
    hdu.write_col(f, "MEANING", &ALL.iter().map(|b| b.description().to_string()).collect::<Vec<_>>())?;
    hdu.write_key(f, "FATALMSK", (FATAL_MASK as i64, "quality_flags & FATALMSK != 0: no estimates"))?;
    // The published cuts, in TOPCAT's expression language.
    for c in CUTS {
        hdu.write_key(f, c.fits_key, c.topcat().as_str())?;
    }
    hdu.write_key(f, "MINSNR", (t.min_snr, "LOW_SNR below this median S/N per pixel"))?;
    hdu.write_key(f, "HMASKFR", (t.high_mask_fraction, "HIGH_MASK_FRAC above this masked fraction"))?;
    hdu.write_key(f, "MAXETEFF", (t.max_error[0], "[K] LARGE_ERR above this teff_err"))?;
    hdu.write_key(f, "MAXELOGG", (t.max_error[1], "LARGE_ERR above this logg_err [log(cm.s**-2)]"))?;
    hdu.write_key(f, "MAXEFEH", (t.max_error[2], "LARGE_ERR above this feh_err [dex]"))?;
    hdu.write_key(f, "MAXABSRV", (t.max_abs_rv_kms, "[km/s] NOT_STAR above this |input_rv|"))?;
    hdu.write_key(f, "MAXRVERR", (t.max_rv_err_kms, "[km/s] RV_UNCERTAIN above this input_rv_err"))?;
    hdu.write_key(f, "MPFEH", (t.metal_poor_feh, "METAL_POOR_EMBED below this embedding [Fe/H] [dex]"))?;
    hdu.write_key(f, "DISAGSIG", (t.disagree_sigma, "HEAD_DISAGREE above this many combined sigma"))?;
    Ok(())
}

/// A string keyword of any length: cfitsio's long-string convention (`&` and CONTINUE cards),
/// which astropy and TOPCAT read back whole; a plain card stops at 68 characters.
fn write_long_string(f: &mut FitsFile, key: &str, value: &str) -> fitsio::errors::Result<()> {
    let (key, value) = (std::ffi::CString::new(key)?, std::ffi::CString::new(value)?);
    let mut status = 0;
    // SAFETY: live handle; cfitsio copies the NUL-terminated strings.
    unsafe {
        fitsio::sys::ffpkls(f.as_raw(), key.as_ptr(), value.as_ptr(), std::ptr::null(), &mut status);
    }
    fitsio::errors::check_status(status)
}

/// Writes a logical column from 0/1 bytes through cfitsio (`ffpcll`).
fn write_logical(f: &mut FitsFile, colnum: usize, values: &[i8]) -> fitsio::errors::Result<()> {
    let mut status = 0;
    let mut v: Vec<std::os::raw::c_char> = values.iter().map(|&b| b as std::os::raw::c_char).collect();
    unsafe {
        fitsio::sys::ffpcll(f.as_raw(), colnum as i32, 1, 1, v.len() as i64, v.as_mut_ptr(), &mut status);
    }
    fitsio::errors::check_status(status)
}
