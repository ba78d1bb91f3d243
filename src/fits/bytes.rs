//! LAMOST mock files assembled in memory: the same bytes cfitsio writes (a test compares them),
//! without cfitsio's keyword-by-keyword header parsing, and ready to gzip without a round trip
//! through the file system. A mock LAMOST file is a primary header from a real template plus
//! either a 5 × npix float image (image layout) or a one-row binary table COADD (coadd layout).

const BLOCK: usize = 2880;

/// A header being assembled: 80-byte cards, END, padded to a 2880-byte block with spaces.
struct Header(Vec<u8>);

impl Header {
    fn new() -> Self {
        Header(Vec::with_capacity(4 * BLOCK))
    }

    fn raw(&mut self, card: &str) {
        let bytes = card.as_bytes();
        let n = bytes.len().min(80);
        self.0.extend_from_slice(&bytes[..n]);
        self.0.resize(self.0.len() + 80 - n, b' ');
    }

    /// `KEY     =                value / comment`, value right-aligned in 20 columns.
    fn number(&mut self, key: &str, value: &str, comment: &str) {
        self.raw(&format!("{key:<8}= {value:>20} / {comment}"));
    }

    /// `KEY     = 'text    '           / comment`: text padded to 8 inside the quotes, the quoted
    /// value left-aligned in 20 columns.
    fn string(&mut self, key: &str, value: &str, comment: &str) {
        let quoted = format!("'{value:<8}'");
        self.raw(&format!("{key:<8}= {quoted:<20} / {comment}"));
    }

    fn finish(mut self) -> Vec<u8> {
        self.raw("END");
        let padded = self.0.len().div_ceil(BLOCK) * BLOCK;
        self.0.resize(padded, b' ');
        self.0
    }
}

const STANDARD_COMMENTS: [&str; 2] = [
    "COMMENT   FITS (Flexible Image Transport System) format is defined in 'Astronomy",
    "COMMENT   and Astrophysics', volume 376, page 359; bibcode: 2001A&A...376..359H",
];

fn primary(bitpix: i32, axes: &[usize], cards: &[String]) -> Header {
    let mut h = Header::new();
    h.number("SIMPLE", "T", "file does conform to FITS standard");
    h.number("BITPIX", &bitpix.to_string(), "number of bits per data pixel");
    h.number("NAXIS", &axes.len().to_string(), "number of data axes");
    for (k, n) in axes.iter().enumerate() {
        h.number(&format!("NAXIS{}", k + 1), &n.to_string(), &format!("length of data axis {}", k + 1));
    }
    h.number("EXTEND", "T", "FITS dataset may contain extensions");
    for c in STANDARD_COMMENTS {
        h.raw(c);
    }
    for c in cards {
        h.raw(c);
    }
    h
}

/// Big-endian float32 data, zero-padded to a whole block.
fn data_block(rows: &[&[f32]]) -> Vec<u8> {
    let n: usize = rows.iter().map(|r| r.len()).sum();
    let mut out = Vec::with_capacity((4 * n).div_ceil(BLOCK) * BLOCK);
    for row in rows {
        for v in *row {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out
}

/// Image layout: the primary HDU holds flux, ivar, wavelength, andmask, ormask as a 5 × npix image.
pub fn image_layout(cards: &[String], rows: [&[f32]; 5]) -> Vec<u8> {
    let npix = rows[0].len();
    let mut out = primary(-32, &[npix, 5], cards).finish();
    out.extend(data_block(&rows));
    out
}

/// Coadd layout: an empty primary HDU and a binary table COADD with one row of six float arrays
/// (`columns`: name and values). `columns` empty: the table is left out (a damaged mock file).
pub fn coadd_layout(cards: &[String], columns: &[(&str, &[f32])]) -> Vec<u8> {
    let mut out = primary(8, &[], cards).finish();
    if columns.is_empty() {
        return out;
    }
    let npix = columns[0].1.len();
    let mut h = Header::new();
    h.string("XTENSION", "BINTABLE", "binary table extension");
    h.number("BITPIX", "8", "8-bit bytes");
    h.number("NAXIS", "2", "2-dimensional binary table");
    h.number("NAXIS1", &(4 * npix * columns.len()).to_string(), "width of table in bytes");
    h.number("NAXIS2", "1", "number of rows in table");
    h.number("PCOUNT", "0", "size of special data area");
    h.number("GCOUNT", "1", "one data group (required keyword)");
    h.number("TFIELDS", &columns.len().to_string(), "number of fields in each row");
    for (k, (name, _)) in columns.iter().enumerate() {
        let i = k + 1;
        h.string(&format!("TTYPE{i}"), name, &format!("label for field {i:>3}"));
        h.string(&format!("TFORM{i}"), &format!("{npix}E"), "data format of field: 4-byte REAL");
    }
    h.string("EXTNAME", "COADD", "name of this binary table extension");
    out.extend(h.finish());
    let rows: Vec<&[f32]> = columns.iter().map(|(_, v)| *v).collect();
    out.extend(data_block(&rows));
    out
}
