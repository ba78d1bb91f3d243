//! Tolerant access to FITS files and headers: optional keys, survey sentinels, gzip sniffing.

use super::FitsError;
use fitsio::FitsFile;
use fitsio::hdu::{FitsHdu, HduInfo};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Values surveys write for "missing" (LAMOST −999, −9999, −274 and 99.0 magnitudes are not used here).
const SENTINELS: &[f64] = &[-999.0, -9999.0, -274.0];

/// One HDU's header, read in a single call and parsed once: keyword → value text (strings unquoted).
/// Reading keywords one at a time through cfitsio rescans the header for each of them, which was
/// a tenth of the LAMOST ingest time.
#[derive(Debug, Clone, Default)]
pub struct FitsHeader {
    values: HashMap<String, String>,
}

impl FitsHeader {
    /// Reads the header of `hdu` (making it current).
    pub fn read(f: &mut FitsFile, hdu: &FitsHdu) -> Result<Self, FitsError> {
        if !super::cfitsio::move_to(f, hdu.number) {
            return Err(FitsError::Fits {
                what: "header".into(),
                message: format!("cannot move to HDU {}", hdu.number),
            });
        }
        Self::read_current(f)
    }

    /// Reads the header of the current HDU.
    pub fn read_current(f: &mut FitsFile) -> Result<Self, FitsError> {
        use fitsio::sys::{fffree, ffhdr2str};
        let (mut status, mut nkeys) = (0, 0);
        let mut text: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: pointers come from a live FitsFile; cfitsio allocates `text` (nkeys × 80 chars, NUL-terminated)
        // and we release it with fffree after copying.
        let cards = unsafe {
            let fptr = f.as_raw();
            ffhdr2str(fptr, 1, std::ptr::null_mut(), 0, &mut text, &mut nkeys, &mut status);
            if status != 0 || text.is_null() {
                return Err(FitsError::Fits { what: "header".into(), message: format!("cfitsio status {status}") });
            }
            let bytes = std::ffi::CStr::from_ptr(text).to_bytes().to_vec();
            let mut free_status = 0;
            fffree(text as *mut std::os::raw::c_void, &mut free_status);
            bytes
        };
        let values = cards.chunks(80).filter_map(parse_card).collect();
        Ok(Self { values })
    }

    /// Every keyword that has a value.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// A keyword as trimmed text; None when absent or blank.
    pub fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).filter(|s| !s.is_empty()).cloned()
    }

    /// A numeric keyword; survey sentinels and non-finite values become None.
    pub fn f64(&self, name: &str) -> Option<f64> {
        let v: f64 = self.values.get(name)?.replace(['D', 'd'], "E").parse().ok()?;
        (v.is_finite() && !SENTINELS.contains(&v)).then_some(v)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        let s = self.values.get(name)?;
        s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().filter(|v| v.fract() == 0.0).map(|v| v as i64))
    }
}

/// `KEYWORD = value / comment` → (KEYWORD, value); strings lose their quotes ('' → ').
fn parse_card(card: &[u8]) -> Option<(String, String)> {
    // Headers are ASCII by the standard; anything else is not a card we need.
    if card.len() < 10 || &card[8..10] != b"= " || !card.is_ascii() {
        return None;
    }
    let card = std::str::from_utf8(card).ok()?;
    let key = card[..8].trim().to_string();
    let rest = card[10..].trim_start();
    let value = if let Some(body) = rest.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        out.trim_end().to_string()
    } else {
        rest.split('/').next().unwrap_or("").trim().to_string()
    };
    Some((key, value))
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
/// later. Leaves the last HDU current, so call it after reading (see [`read_checked`]).
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
    }
    if status != 0 {
        return Err(format!("truncated or corrupt: cfitsio status {status} while locating the last HDU"));
    }
    let end = data_end as u64;
    if end > size {
        return Err(format!("truncated: HDU {nhdu} ends at byte {end} but the file has {size} bytes"));
    }
    // Bytes after the last HDU are harmless padding unless they start another HDU that cfitsio
    // could not read in full.
    if size - end >= FITS_BLOCK && starts_an_hdu(path, end) {
        return Err(format!("truncated: {} bytes after the last complete HDU ({nhdu}) are a partial HDU", size - end));
    }
    Ok(())
}

/// An open FITS file. Gzip'd files are inflated here (zlib-rs, about twice as fast as the zlib inside
/// cfitsio, and gunzip is most of the cost of a LAMOST file) and cfitsio reads them from memory.
pub struct OpenedFits {
    // Field order is drop order: cfitsio must close the file before its memory goes away.
    file: FitsFile,
    memory: Option<Box<MemoryFile>>,
    /// Our own handle on an uncompressed file, for reads that bypass cfitsio.
    disk: Option<std::fs::File>,
}

impl OpenedFits {
    /// Fills `buf` with the bytes at `offset` of the (decompressed) file, bypassing cfitsio: for
    /// pixel rows decoded here (`raw_image`).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        match (&self.memory, &self.disk) {
            (Some(m), _) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let bytes = start.checked_add(buf.len()).and_then(|end| m.bytes.get(start..end));
                let bytes = bytes.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(bytes);
                Ok(())
            }
            (None, Some(f)) => f.read_exact_at(buf, offset),
            (None, None) => Err(std::io::Error::other("no byte access to this file")),
        }
    }
}

/// The bytes of a decompressed file and the pointer/size cells cfitsio keeps the addresses of.
struct MemoryFile {
    bytes: Vec<u8>,
    ptr: *mut std::os::raw::c_void,
    size: usize,
}

impl std::ops::Deref for OpenedFits {
    type Target = FitsFile;
    fn deref(&self) -> &FitsFile {
        &self.file
    }
}

impl std::ops::DerefMut for OpenedFits {
    fn deref_mut(&mut self) -> &mut FitsFile {
        &mut self.file
    }
}

fn open_gzip_in_memory(compressed: &[u8]) -> Result<OpenedFits, FitsError> {
    let open_err = |message: String| FitsError::Open { gzip: "gzip", message };
    let mut bytes = Vec::with_capacity(compressed.len() * 3);
    flate2::read::MultiGzDecoder::new(compressed)
        .read_to_end(&mut bytes)
        .map_err(|e| open_err(format!("gzip stream is damaged or truncated: {e}")))?;
    super::sizes::check_declared_sizes(&mut std::io::Cursor::new(&bytes), bytes.len() as u64)?;
    let mut mem = Box::new(MemoryFile { ptr: std::ptr::null_mut(), size: bytes.len(), bytes });
    mem.ptr = mem.bytes.as_mut_ptr() as *mut std::os::raw::c_void;
    let name = std::ffi::CString::new("gunzipped.fits").expect("no NUL");
    let (mut fptr, mut status) = (std::ptr::null_mut(), 0);
    // SAFETY: `mem` is boxed, so the buffer and the ptr/size cells cfitsio records stay at fixed
    // addresses until `OpenedFits` drops, which closes the file first. READONLY (0) and no realloc
    // function: cfitsio neither writes nor frees the buffer (its "memkeep" driver).
    let file = unsafe {
        fitsio::sys::ffomem(&mut fptr, name.as_ptr(), 0, &mut mem.ptr, &mut mem.size, 0, None, &mut status);
        if status != 0 || fptr.is_null() {
            return Err(open_err(format!("not a FITS file inside the gzip stream (cfitsio status {status})")));
        }
        FitsFile::from_raw(fptr, fitsio::FileOpenMode::READONLY).map_err(|e| open_err(e.to_string()))?
    };
    Ok(OpenedFits { file, memory: Some(mem), disk: None })
}

fn starts_an_hdu(path: &Path, offset: u64) -> bool {
    use std::io::{Seek, SeekFrom};
    let mut card = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_exact(&mut card)))
        .is_ok_and(|_| &card == b"XTENSION")
}

/// Opens a file by its literal name: cfitsio's usual open parses `[...]` and `(...)` in names as
/// extended-filename syntax, and the fitsio crate's open needs UTF-8 paths; `fits_open_diskfile`
/// with the raw bytes does neither.
fn open_disk_file(path: &Path) -> Result<FitsFile, FitsError> {
    use std::os::unix::ffi::OsStrExt;
    let open_err = |message: String| FitsError::Open { gzip: "not gzip", message };
    let name =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| open_err("path contains a NUL byte".into()))?;
    let (mut fptr, mut status) = (std::ptr::null_mut(), 0);
    // SAFETY: cfitsio writes a new handle into `fptr` or reports failure in `status`; the handle is
    // owned by the FitsFile from then on, which closes it on drop.
    unsafe {
        fitsio::sys::ffdkopn(&mut fptr, name.as_ptr(), 0, &mut status);
        if status != 0 || fptr.is_null() {
            return Err(open_err(format!("not a FITS file ({})", super::cfitsio::status_text(status))));
        }
        FitsFile::from_raw(fptr, fitsio::FileOpenMode::READONLY).map_err(|e| open_err(e.to_string()))
    }
}

/// Opens a survey file for reading: sniffs gzip from the magic bytes (never the name) and opens it.
/// Returns the handle and whether it was gzip'd.
pub fn open_fits(path: &Path) -> Result<(OpenedFits, bool), FitsError> {
    // One handle for the gzip sniff, the whole read of a gzip'd file, and the size check of a plain
    // one (opening a file costs ~0.5 ms here, ×11 million LAMOST files); cfitsio opens its own.
    let mut file = std::fs::File::open(path).map_err(|_| FitsError::NotFound)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|_| FitsError::NotFound)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        let open_err = |e: std::io::Error| FitsError::Open { gzip: "gzip", message: e.to_string() };
        let mut compressed = magic.to_vec();
        file.read_to_end(&mut compressed).map_err(open_err)?;
        return Ok((open_gzip_in_memory(&compressed)?, true));
    }
    let open_err = |e: std::io::Error| FitsError::Open { gzip: "not gzip", message: e.to_string() };
    let len = file.metadata().map_err(open_err)?.len();
    super::sizes::check_declared_sizes(&mut std::io::BufReader::new(&mut file), len)?;
    Ok((OpenedFits { file: open_disk_file(path)?, memory: None, disk: Some(file) }, false))
}

/// Runs `read` on an opened file, then checks an uncompressed file for truncation. A truncated file
/// is reported as such even when `read` already failed on it, since that is the better reason.
/// Checking last means cfitsio does not re-read headers it already parsed.
pub fn read_checked<T, E: From<FitsError>>(
    f: &mut OpenedFits,
    path: &Path,
    gzip: bool,
    read: impl FnOnce(&mut OpenedFits) -> Result<T, E>,
) -> Result<T, E> {
    let result = read(f);
    if gzip {
        return result;
    }
    check_not_truncated(f, path).map_err(FitsError::Truncated)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_parse_strings_numbers_and_comments() {
        let card = |s: &str| format!("{s:<80}").into_bytes();
        assert_eq!(
            parse_card(&card("OBSID   =            101005 / unique id")),
            Some(("OBSID".into(), "101005".into()))
        );
        assert_eq!(parse_card(&card("CLASS   = 'STAR    '           / class")), Some(("CLASS".into(), "STAR".into())));
        assert_eq!(parse_card(&card("NOTE    = 'it''s / here'")), Some(("NOTE".into(), "it's / here".into())));
        assert_eq!(parse_card(&card("COMMENT this is not a value")), None);
    }
}
