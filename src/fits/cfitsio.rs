//! A few direct cfitsio calls for the per-file hot path. The fitsio crate builds a full description
//! of every HDU it touches (every column's name, type and unit, BSCALE/BZERO lookups), which costs
//! more than reading a LAMOST spectrum itself; these wrappers ask cfitsio only for what we use.
//! Each returns cfitsio's status text on failure.

use fitsio::FitsFile;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};

/// cfitsio's data-type code for f32 (TFLOAT) and its HDU type for binary tables (BINARY_TBL).
const TFLOAT: c_int = 42;
const BINARY_TBL: c_int = 2;

/// Human-readable text of a cfitsio status code.
pub fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 31];
    // SAFETY: ffgerr writes at most 30 characters plus a NUL.
    unsafe {
        fitsio::sys::ffgerr(status, buf.as_mut_ptr());
        format!("cfitsio status {status}: {}", CStr::from_ptr(buf.as_ptr()).to_string_lossy())
    }
}

fn check(status: c_int) -> Result<(), String> {
    if status == 0 { Ok(()) } else { Err(status_text(status)) }
}

/// Shape of the current image HDU in C order (slowest axis first); empty for NAXIS = 0.
pub fn image_shape(f: &mut FitsFile) -> Result<Vec<usize>, String> {
    let (mut naxis, mut status) = (0, 0);
    // SAFETY: `f` is a live handle; cfitsio fills `naxis` and `dims` (sized from naxis).
    unsafe {
        let fptr = f.as_raw();
        fitsio::sys::ffgidm(fptr, &mut naxis, &mut status);
        check(status)?;
        let mut dims = vec![0i64; naxis.max(0) as usize];
        fitsio::sys::ffgiszll(fptr, naxis, dims.as_mut_ptr(), &mut status);
        check(status)?;
        Ok(dims.iter().rev().map(|&d| d.max(0) as usize).collect())
    }
}

/// The first `n` pixels of the current image as f32 (scaled by BSCALE/BZERO, byte-swapped).
pub fn read_image_f32(f: &mut FitsFile, n: usize) -> Result<Vec<f32>, String> {
    let mut out = vec![0f32; n];
    let (mut anynul, mut status) = (0, 0);
    // SAFETY: `out` has room for `n` values, the count cfitsio is asked for.
    unsafe {
        fitsio::sys::ffgpv(
            f.as_raw(),
            TFLOAT,
            1,
            n as i64,
            std::ptr::null_mut(),
            out.as_mut_ptr() as *mut c_void,
            &mut anynul,
            &mut status,
        );
    }
    check(status).map(|_| out)
}

/// Makes HDU `number` (0-based) current; returns false when the file has no such HDU.
pub fn move_to(f: &mut FitsFile, number: usize) -> bool {
    let (mut hdutype, mut status) = (0, 0);
    // SAFETY: live handle; a failed move is reported in `status`.
    unsafe { fitsio::sys::ffmahd(f.as_raw(), number as c_int + 1, &mut hdutype, &mut status) };
    status == 0
}

/// Makes the binary table with EXTNAME `name` current.
pub fn move_to_table(f: &mut FitsFile, name: &str) -> Result<(), String> {
    let cname = CString::new(name).map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: live handle; cfitsio only reads `cname`.
    unsafe { fitsio::sys::ffmnhd(f.as_raw(), BINARY_TBL, cname.as_ptr() as *mut c_char, 0, &mut status) };
    check(status)
}

/// EXTNAME of the current HDU, if any.
pub fn extname(f: &mut FitsFile) -> Option<String> {
    let mut value = [0 as c_char; 71];
    let mut status = 0;
    // SAFETY: a string keyword value is at most 68 characters plus NUL; 71 leaves room.
    unsafe {
        fitsio::sys::ffgkys(f.as_raw(), c"EXTNAME".as_ptr(), value.as_mut_ptr(), std::ptr::null_mut(), &mut status);
        (status == 0).then(|| CStr::from_ptr(value.as_ptr()).to_string_lossy().trim().to_string())
    }
}

/// Every value of column `name` of the current binary table (rows × repeat), as f32; None when the
/// table has no such column.
pub fn read_column_f32(f: &mut FitsFile, name: &str) -> Result<Option<Vec<f32>>, String> {
    let cname = CString::new(name).map_err(|e| e.to_string())?;
    let (mut colnum, mut typecode, mut repeat, mut width, mut nrows, mut status) = (0, 0, 0i64, 0i64, 0i64, 0);
    // SAFETY: live handle; `out` is sized from the repeat count and row count cfitsio reports.
    unsafe {
        let fptr = f.as_raw();
        // CASEINSEN = 0: FITS column names compare case-insensitively.
        fitsio::sys::ffgcno(fptr, 0, cname.as_ptr() as *mut c_char, &mut colnum, &mut status);
        if status != 0 {
            return Ok(None);
        }
        fitsio::sys::ffgtclll(fptr, colnum, &mut typecode, &mut repeat, &mut width, &mut status);
        fitsio::sys::ffgnrwll(fptr, &mut nrows, &mut status);
        check(status)?;
        let n = (repeat.max(0) * nrows.max(0)) as usize;
        let mut out = vec![0f32; n];
        let mut anynul = 0;
        fitsio::sys::ffgcv(
            fptr,
            TFLOAT,
            colnum,
            1,
            1,
            n as i64,
            std::ptr::null_mut(),
            out.as_mut_ptr() as *mut c_void,
            &mut anynul,
            &mut status,
        );
        check(status).map(|_| Some(out))
    }
}

/// EXTNAME → HDU number (0-based) for every HDU of the file, read in one pass. Looking HDUs up by
/// name through cfitsio walks (and re-parses) the file from the start on every lookup, which for a
/// DESI coadd's ~19 HDUs cost more than everything else ingest does with the file.
pub fn hdu_names(f: &mut FitsFile) -> std::collections::HashMap<String, usize> {
    let mut names = std::collections::HashMap::new();
    let mut i = 0;
    while move_to(f, i) {
        if let Some(name) = extname(f) {
            // The first HDU of a name wins, as with cfitsio's own lookup.
            names.entry(name.to_uppercase()).or_insert(i);
        }
        i += 1;
    }
    names
}
