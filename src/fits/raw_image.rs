//! Rows of a plain 2-D image HDU decoded here, straight from the file's bytes.
//!
//! A DESI FLUX, IVAR or MASK row is a big-endian array of 32-bit values. cfitsio's converting
//! reads byte-swap it with a scalar loop (its vector path needs an SSSE3 build) and convert
//! BZERO-offset integers value by value, which together cost more per star than resampling it.
//! Here a row is one positioned read and one swap loop the compiler vectorises. Only layouts that
//! decode without cfitsio's help qualify (see [`RawImage::probe`]); anything else (tile-compressed
//! images, BSCALE, other BITPIX) keeps the cfitsio path, so the values are the same either way.

use super::file::OpenedFits;
use fitsio::FitsFile;
use std::os::raw::c_int;

/// How a row's 32-bit words become values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// BITPIX = −32, no scaling: IEEE f32.
    F32,
    /// BITPIX = 32 with BZERO = 2³¹: FITS's unsigned 32-bit integers (flip the sign bit).
    U32,
    /// BITPIX = 32 without scaling: signed integers, read for their bit pattern.
    I32,
}

/// Where an image HDU's pixels start and how to decode a row of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawImage {
    data_start: u64,
    row_len: usize,
    pixels: Pixels,
}

const KEY_NO_EXIST: c_int = 202;

unsafe extern "C" {
    /// cfitsio (imcompress.c); not among the fitsio-sys bindings.
    fn fits_is_compressed_image(fptr: *mut fitsio::sys::fitsfile, status: *mut c_int) -> c_int;
}

/// A numeric keyword of the current HDU, None when absent (or unreadable: the caller then declines
/// the raw path rather than guess).
fn keyword_f64(f: &mut FitsFile, key: &std::ffi::CStr) -> Result<Option<f64>, ()> {
    let (mut value, mut status) = (0f64, 0);
    // SAFETY: live handle; cfitsio writes one f64 and a status.
    unsafe { fitsio::sys::ffgkyd(f.as_raw(), key.as_ptr(), &mut value, std::ptr::null_mut(), &mut status) };
    match status {
        0 => Ok(Some(value)),
        KEY_NO_EXIST => Ok(None),
        _ => Err(()),
    }
}

impl RawImage {
    /// The current HDU of `f` as a raw image of `nrows` rows × `row_len` pixels, when it is an
    /// uncompressed image whose pixels decode without cfitsio: f32 without BSCALE/BZERO, or 32-bit
    /// integers that are unscaled or FITS-unsigned (BZERO 2³¹). None otherwise.
    pub fn probe(f: &mut FitsFile, nrows: usize, row_len: usize) -> Option<RawImage> {
        let (mut bitpix, mut hdutype, mut status) = (0, 0, 0);
        let (mut head, mut data, mut end) = (0i64, 0i64, 0i64);
        // SAFETY: live handle; cfitsio fills the scalars it is given.
        unsafe {
            let fptr = f.as_raw();
            fitsio::sys::ffghdt(fptr, &mut hdutype, &mut status);
            fitsio::sys::ffgidt(fptr, &mut bitpix, &mut status);
            fitsio::sys::ffghadll(fptr, &mut head, &mut data, &mut end, &mut status);
        }
        // A tile-compressed image (DESI compresses the MASK of per-exposure files) is a binary
        // table on disk that cfitsio presents as an image: only cfitsio can decode it.
        // SAFETY: live handle.
        let compressed = unsafe { fits_is_compressed_image(f.as_raw(), &mut status) } != 0;
        if status != 0 || hdutype != 0 || compressed {
            return None;
        }
        let bscale = keyword_f64(f, c"BSCALE").ok()?;
        let bzero = keyword_f64(f, c"BZERO").ok()?;
        if bscale.is_some_and(|s| s != 1.0) {
            return None;
        }
        let offset = bzero.unwrap_or(0.0);
        let pixels = match bitpix {
            -32 if offset == 0.0 => Pixels::F32,
            32 if offset == 0.0 => Pixels::I32,
            32 if offset == 2_147_483_648.0 => Pixels::U32,
            _ => return None,
        };
        let needed = (nrows as u64).checked_mul(row_len as u64)?.checked_mul(4)?;
        (end - data >= needed as i64).then_some(RawImage { data_start: data as u64, row_len, pixels })
    }

    pub fn pixels(&self) -> Pixels {
        self.pixels
    }

    fn read_row_bytes<'a>(&self, file: &OpenedFits, row: usize, bytes: &'a mut Vec<u8>) -> std::io::Result<&'a [u8]> {
        let n = self.row_len * 4;
        bytes.resize(n, 0);
        file.read_exact_at(&mut bytes[..n], self.data_start + (row * n) as u64)?;
        Ok(&bytes[..n])
    }

    /// Row `row` as f32 (a [`Pixels::F32`] image); `bytes` is scratch space reused between calls.
    pub fn read_f32_row(&self, file: &OpenedFits, row: usize, bytes: &mut Vec<u8>) -> std::io::Result<Vec<f32>> {
        debug_assert_eq!(self.pixels, Pixels::F32);
        Ok(decode_f32(self.read_row_bytes(file, row, bytes)?))
    }

    /// Row `row` of a 32-bit integer image as u32: FITS-unsigned values, or the bit pattern of
    /// signed ones (a mask's bits are what matters).
    pub fn read_u32_row(&self, file: &OpenedFits, row: usize, bytes: &mut Vec<u8>) -> std::io::Result<Vec<u32>> {
        let flip = match self.pixels {
            Pixels::U32 => 0x8000_0000,
            Pixels::I32 => 0,
            Pixels::F32 => unreachable!("read_u32_row on a float image"),
        };
        Ok(decode_u32(self.read_row_bytes(file, row, bytes)?, flip))
    }
}

/// Big-endian IEEE f32 words → values.
pub fn decode_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|w| f32::from_bits(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))).collect()
}

/// Big-endian 32-bit words → u32, XOR `flip` (2³¹ for BZERO-offset unsigned values).
pub fn decode_u32(bytes: &[u8], flip: u32) -> Vec<u32> {
    bytes.chunks_exact(4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]) ^ flip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_decode_big_endian() {
        let bytes: Vec<u8> = [1.5f32, -2.0, f32::NAN].iter().flat_map(|v| v.to_be_bytes()).collect();
        let v = decode_f32(&bytes);
        assert_eq!(&v[..2], &[1.5, -2.0]);
        assert!(v[2].is_nan());
        // FITS unsigned: stored value = v − 2³¹ as int32, so 0 is stored as 0x80000000.
        assert_eq!(decode_u32(&[0x80, 0, 0, 0, 0x80, 0, 0, 5], 0x8000_0000), vec![0, 5]);
        assert_eq!(decode_u32(&[0xff, 0xff, 0xff, 0xff], 0), vec![u32::MAX]);
    }
}
