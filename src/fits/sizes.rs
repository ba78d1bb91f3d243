//! Declared sizes checked against the bytes there are, before cfitsio reads anything: a header that
//! claims more data than the file holds (a truncated file, or a lying NAXISn, BITPIX, PCOUNT or
//! TFORMn) would otherwise make a reader allocate what the header says (the fuzz benchmark found
//! 33 TB) and abort the whole process, which no `catch_unwind` can stop.

use super::FitsError;
use std::io::{Read, Seek, SeekFrom};

const BLOCK: u64 = 2880;
const CARD: usize = 80;
/// Far beyond any real header (a DESI FIBERMAP header is ~20 blocks), so a file of blank blocks
/// cannot keep this walk reading.
const MAX_HEADER_BLOCKS: u64 = 10_000;

/// Walks the HDUs of a FITS source of `len` bytes and fails when one declares data beyond the end,
/// or a binary table whose columns do not add up to its row width. Headers it cannot parse are
/// left to cfitsio, which refuses them.
pub fn check_declared_sizes<R: Read + Seek>(r: &mut R, len: u64) -> Result<(), FitsError> {
    let mut start = 0u64;
    let mut k = 0usize;
    while len.saturating_sub(start) >= BLOCK {
        let Some((cards, data_start)) = read_header(r, start, len) else { return Ok(()) };
        let int = |key: &str| cards.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse::<i64>().ok());
        let bitpix = int("BITPIX").unwrap_or(8).unsigned_abs() / 8;
        let naxis = int("NAXIS").unwrap_or(0);
        if !(0..=999).contains(&naxis) {
            return Err(FitsError::Shape(format!("HDU {k} declares NAXIS = {naxis}")));
        }
        let elements = if naxis == 0 {
            Some(0u64)
        } else {
            (1..=naxis).try_fold(1u64, |p, i| p.checked_mul(int(&format!("NAXIS{i}")).unwrap_or(0).max(0) as u64))
        };
        let pcount = int("PCOUNT").unwrap_or(0).max(0) as u64;
        let gcount = int("GCOUNT").unwrap_or(1).max(1) as u64;
        let size = elements
            .and_then(|e| if naxis == 0 { Some(0) } else { e.checked_add(pcount) })
            .and_then(|e| e.checked_mul(gcount))
            .and_then(|e| e.checked_mul(bitpix.max(1)));
        let end = size.and_then(|s| data_start.checked_add(s)).filter(|&e| e <= len);
        let Some(end) = end else {
            let declared = size.map_or_else(|| "more than 2^64".to_string(), |s| (data_start + s).to_string());
            return Err(FitsError::Truncated(format!(
                "truncated: HDU {k} ends at byte {declared} but the file has {len} bytes (or its header lies)"
            )));
        };
        let is_table = cards.iter().any(|(key, v)| key == "XTENSION" && v.starts_with("BINTABLE"));
        if is_table && naxis == 2 {
            check_row_width(&cards, int("NAXIS1").unwrap_or(0), k)?;
        }
        start = data_start + (end - data_start).div_ceil(BLOCK) * BLOCK;
        k += 1;
    }
    Ok(())
}

/// The cards of the header at `start` (keyword, value text) and where its data begin; None when
/// no END card is found within the file.
fn read_header<R: Read + Seek>(r: &mut R, start: u64, len: u64) -> Option<(Vec<(String, String)>, u64)> {
    r.seek(SeekFrom::Start(start)).ok()?;
    let mut cards = Vec::new();
    let mut block = vec![0u8; BLOCK as usize];
    for b in 0..MAX_HEADER_BLOCKS {
        if start + (b + 1) * BLOCK > len {
            return None;
        }
        r.read_exact(&mut block).ok()?;
        for card in block.chunks(CARD) {
            let key = String::from_utf8_lossy(&card[..8]).trim().to_string();
            if key == "END" {
                return Some((cards, start + (b + 1) * BLOCK));
            }
            if card[8..10] == *b"= " {
                let text = String::from_utf8_lossy(&card[10..]);
                let value = match text.trim_start().strip_prefix('\'') {
                    Some(rest) => rest.split('\'').next().unwrap_or("").trim().to_string(),
                    None => text.split('/').next().unwrap_or("").trim().to_string(),
                };
                cards.push((key, value));
            }
        }
    }
    None
}

/// Binary tables: the TFORMn widths must add up to NAXIS1, or a column read would run past its row.
fn check_row_width(cards: &[(String, String)], naxis1: i64, k: usize) -> Result<(), FitsError> {
    let value = |key: &str| cards.iter().find(|(c, _)| c == key).map(|(_, v)| v.as_str());
    let fields = value("TFIELDS").and_then(|v| v.parse::<u32>().ok()).unwrap_or(0).min(999);
    let mut width = 0u64;
    for i in 1..=fields {
        let tform = value(&format!("TFORM{i}")).unwrap_or("");
        let digits: String = tform.chars().take_while(char::is_ascii_digit).collect();
        let repeat: u64 = if digits.is_empty() { 1 } else { digits.parse().unwrap_or(u64::MAX) };
        let code = tform[digits.len()..].chars().next().unwrap_or('?');
        let bytes = match code {
            'L' | 'B' | 'A' => Some(repeat),
            'X' => Some(repeat.div_ceil(8)),
            'I' => repeat.checked_mul(2),
            'J' | 'E' => repeat.checked_mul(4),
            'K' | 'D' | 'C' => repeat.checked_mul(8),
            'M' => repeat.checked_mul(16),
            'P' => repeat.checked_mul(8),
            'Q' => repeat.checked_mul(16),
            _ => return Err(FitsError::Shape(format!("HDU {k}: TFORM{i} = '{tform}' is not a binary-table format"))),
        };
        width = bytes.and_then(|b| width.checked_add(b)).ok_or_else(|| {
            FitsError::Shape(format!("HDU {k}: TFORM{i} = '{tform}' declares more bytes than any file holds"))
        })?;
    }
    if width != naxis1.max(0) as u64 {
        return Err(FitsError::Shape(format!(
            "HDU {k}: its columns (TFORMn) take {width} bytes per row but NAXIS1 says {naxis1}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn real(rel: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real").join(rel)).unwrap()
    }

    /// Rewrites the value of the first card `key` after byte `from`.
    fn lie(bytes: &mut [u8], from: usize, key: &str, value: &str) {
        let at =
            (from..bytes.len() - 80).step_by(80).find(|&o| bytes[o..o + 8] == *format!("{key:<8}").as_bytes()).unwrap();
        let card = format!("{key:<8}= {value:>20}");
        bytes[at..at + 80].fill(b' ');
        bytes[at..at + card.len()].copy_from_slice(card.as_bytes());
    }

    #[test]
    fn real_files_pass_and_lying_sizes_are_refused_before_any_read() {
        for f in [
            "desi/coadd-4-80613-thru20210324.fits",
            "desi/spectra-sv3-dark-26065.fits",
            "desi/redrock-special-dark-27247.fits",
        ] {
            let b = real(f);
            check_declared_sizes(&mut Cursor::new(&b), b.len() as u64).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        let pristine = real("lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits");
        let len = pristine.len() as u64;
        check_declared_sizes(&mut Cursor::new(&pristine), len).unwrap();
        for (key, value) in
            [("NAXIS1", "9223372036854775807"), ("NAXIS2", "4000000000"), ("BITPIX", "-64"), ("NAXIS", "2147483647")]
        {
            let mut b = pristine.clone();
            lie(&mut b, 0, key, value);
            let e = check_declared_sizes(&mut Cursor::new(&b), len).unwrap_err().to_string();
            assert!(e.contains("truncated") || e.contains("NAXIS"), "{key}: {e}");
        }
        // A table column that claims more than its row holds (the 33 TB allocation the fuzzer found).
        let mut b = real("desi/redrock-special-dark-27247.fits");
        let z = b.windows(8).position(|w| w == b"TFORM1  ").unwrap() / 80 * 80;
        lie(&mut b, z, "TFORM1", "'99999999K'");
        let e = check_declared_sizes(&mut Cursor::new(&b), b.len() as u64).unwrap_err().to_string();
        assert!(e.contains("bytes per row but NAXIS1 says"), "{e}");
    }
}
