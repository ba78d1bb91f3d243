//! The catalogue as a FITS binary table, for TOPCAT and other FITS tools: one HDU `CATALOG` with
//! TUNITn (units), TUCDn and TCOMMn (the UCD and description conventions STIL/TOPCAT read).
//!
//! FITS has no nulls for floats but NaN, and no unsigned 32-bit integers: null floats are NaN, null
//! integers are −1 with TNULLn = −1, `flags` is a signed 32-bit column (bit 31 is never set),
//! booleans are logical (L) columns.

use super::{CatalogError, Result};
use crate::schema::TableSchema;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type};
use fitsio::FitsFile;
use fitsio::tables::{ColumnDataType, ColumnDescription};
use std::path::Path;

pub fn write_fits(path: &Path, batch: &RecordBatch, schema: &TableSchema) -> Result<()> {
    let tmp = crate::ingest::shards::tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let e = |e: fitsio::errors::Error| CatalogError::bad(&tmp, e.to_string());
    let mut f = FitsFile::create(&tmp).open().map_err(e)?;
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
                hdu.write_col(&mut f, name, &col.as_primitive::<Int64Type>().values().to_vec()).map(|_| ())
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
        if !spec.unit.is_empty() {
            hdu.write_key(&mut f, &format!("TUNIT{n}"), spec.unit.as_str()).map_err(e)?;
        }
        if let Some(ucd) = &spec.ucd {
            hdu.write_key(&mut f, &format!("TUCD{n}"), ucd.as_str()).map_err(e)?;
        }
        // FITS card values hold at most 68 characters; the full text is in schemas/catalog.toml.
        let comm: String = spec.description.chars().take(68).collect();
        hdu.write_key(&mut f, &format!("TCOMM{n}"), comm.as_str()).map_err(e)?;
        if matches!(field.data_type(), DataType::Int32) && col.null_count() > 0 {
            hdu.write_key(&mut f, &format!("TNULL{n}"), -1i64).map_err(e)?;
        }
    }
    hdu.write_key(&mut f, "ORIGIN", format!("starpipe {}", crate::VERSION).as_str()).map_err(e)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|err| CatalogError::io(path, err))
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
