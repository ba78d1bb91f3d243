//! Just enough FITS structure to damage a file where it hurts: HDU extents, header cards and
//! binary-table column offsets. Reads bytes only; never trusts what it finds beyond the buffer.

use std::ops::Range;

pub const BLOCK: usize = 2880;
const CARD: usize = 80;

/// One HDU as laid out in the bytes.
#[derive(Debug, Clone)]
pub struct Hdu {
    /// Header blocks (cards through `END`, padded).
    pub header: Range<usize>,
    /// Data blocks as the header declares them (clipped to the buffer).
    pub data: Range<usize>,
    /// Card keyword → byte offset of the card.
    pub cards: Vec<(String, usize)>,
}

impl Hdu {
    pub fn card(&self, key: &str) -> Option<usize> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, o)| *o)
    }

    /// The card's value as written (quotes of strings removed, trimmed).
    pub fn value(&self, bytes: &[u8], key: &str) -> Option<String> {
        let o = self.card(key)?;
        let card = std::str::from_utf8(&bytes[o..o + CARD]).ok()?;
        let v = card.get(10..)?;
        let v = if let Some(rest) = v.trim_start().strip_prefix('\'') {
            rest.split('\'').next().unwrap_or("").trim().to_string()
        } else {
            v.split('/').next().unwrap_or("").trim().to_string()
        };
        Some(v)
    }

    pub fn int(&self, bytes: &[u8], key: &str) -> Option<i64> {
        self.value(bytes, key)?.parse().ok()
    }

    pub fn extname(&self, bytes: &[u8]) -> String {
        self.value(bytes, "EXTNAME").unwrap_or_default()
    }

    /// Byte ranges, relative to the data start, of column `name` in every row of a binary table.
    pub fn column(&self, bytes: &[u8], name: &str) -> Option<(Vec<Range<usize>>, char)> {
        let fields = self.int(bytes, "TFIELDS")?;
        let width = self.int(bytes, "NAXIS1")? as usize;
        let rows = self.int(bytes, "NAXIS2")? as usize;
        let mut offset = 0usize;
        for i in 1..=fields {
            let (repeat, code) = parse_tform(&self.value(bytes, &format!("TFORM{i}"))?)?;
            let size = repeat * code_size(code)?;
            if self.value(bytes, &format!("TTYPE{i}")).is_some_and(|t| t.eq_ignore_ascii_case(name)) {
                let ranges = (0..rows).map(|r| r * width + offset..r * width + offset + size).collect();
                return Some((ranges, code));
            }
            offset += size;
        }
        None
    }
}

fn parse_tform(t: &str) -> Option<(usize, char)> {
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let code = t[digits.len()..].chars().next()?;
    Some((if digits.is_empty() { 1 } else { digits.parse().ok()? }, code))
}

fn code_size(code: char) -> Option<usize> {
    Some(match code {
        'L' | 'B' | 'A' | 'X' => 1,
        'I' => 2,
        'J' | 'E' => 4,
        'K' | 'D' | 'C' | 'P' => 8,
        'M' | 'Q' => 16,
        _ => return None,
    })
}

/// The HDUs of a FITS byte buffer, as far as their headers can be read.
pub fn hdus(bytes: &[u8]) -> Vec<Hdu> {
    let mut out = Vec::new();
    let mut start = 0;
    while bytes.len().saturating_sub(start) >= BLOCK {
        let mut cards = Vec::new();
        let mut end = None;
        let mut o = start;
        while o + CARD <= bytes.len() {
            let key = String::from_utf8_lossy(&bytes[o..o + 8]).trim().to_string();
            if key == "END" {
                end = Some(o);
                break;
            }
            if !key.is_empty() {
                cards.push((key, o));
            }
            o += CARD;
        }
        let Some(end) = end else { break };
        let header_end = (end / BLOCK + 1) * BLOCK;
        let mut hdu = Hdu { header: start..header_end.min(bytes.len()), data: 0..0, cards };
        let bitpix = hdu.int(bytes, "BITPIX").unwrap_or(8).unsigned_abs() as usize / 8;
        // FITS allows at most 999 axes; a lying NAXIS must not make this loop forever.
        let naxis = hdu.int(bytes, "NAXIS").unwrap_or(0).clamp(0, 999);
        let elements: usize = if naxis == 0 {
            0
        } else {
            let axis = |i: i64| hdu.int(bytes, &format!("NAXIS{i}")).unwrap_or(0).max(0) as usize;
            let product = (1..=naxis).fold(1usize, |p, i| p.saturating_mul(axis(i)));
            product.saturating_add(hdu.int(bytes, "PCOUNT").unwrap_or(0).max(0) as usize)
        };
        let size = elements.saturating_mul(bitpix.max(1));
        let data_end = header_end.saturating_add(size.div_ceil(BLOCK).saturating_mul(BLOCK));
        hdu.data = header_end.min(bytes.len())..data_end.min(bytes.len());
        out.push(hdu);
        if data_end <= start || data_end >= bytes.len() {
            break;
        }
        start = data_end;
    }
    out
}

/// Rewrites a card as `KEY = value` (value as FITS spells it: numbers right-aligned, strings quoted).
pub fn set_card(bytes: &mut [u8], offset: usize, key: &str, value: &str) {
    let text =
        if value.starts_with('\'') { format!("{key:<8}= {value:<20}") } else { format!("{key:<8}= {value:>20}") };
    let mut card = [b' '; CARD];
    for (i, b) in text.bytes().take(CARD).enumerate() {
        card[i] = b;
    }
    bytes[offset..offset + CARD].copy_from_slice(&card);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_layout_of_a_real_desi_coadd() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/real/desi/coadd-4-80613-thru20210324.fits");
        let bytes = std::fs::read(path).unwrap();
        let h = hdus(&bytes);
        assert_eq!(h.last().unwrap().data.end, bytes.len(), "the HDUs tile the file");
        let fibermap = h.iter().find(|x| x.extname(&bytes) == "FIBERMAP").unwrap();
        let (rows, code) = fibermap.column(&bytes, "TARGETID").unwrap();
        assert_eq!(code, 'K');
        assert_eq!(rows.len() as i64, fibermap.int(&bytes, "NAXIS2").unwrap());
        let first = &bytes[fibermap.data.start + rows[0].start..fibermap.data.start + rows[0].end];
        assert!(i64::from_be_bytes(first.try_into().unwrap()) > 0);
        assert!(h.iter().any(|x| x.extname(&bytes) == "B_FLUX"));
    }

    #[test]
    fn lying_sizes_neither_loop_nor_overflow() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/real/desi/coadd-4-80613-thru20210324.fits");
        let pristine = std::fs::read(path).unwrap();
        for (key, value) in
            [("NAXIS", "2147483647"), ("NAXIS2", "9223372036854775807"), ("PCOUNT", "9223372036854775807")]
        {
            let mut bytes = pristine.clone();
            let h = hdus(&bytes);
            let fibermap = h.iter().find(|x| x.extname(&bytes) == "FIBERMAP").unwrap();
            set_card(&mut bytes, fibermap.card(key).unwrap(), key, value);
            let after = hdus(&bytes);
            assert!(!after.is_empty() && after.len() <= h.len(), "{key}");
        }
    }
}
