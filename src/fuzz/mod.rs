//! A seeded mutator of real survey files, for robustness tests and the fuzz benchmark: it damages
//! LAMOST files (both layouts, gzip'd or not) and DESI coadd + redrock pairs the ways files are
//! damaged in the wild and by adversaries (flipped bytes, lying structural cards, truncation,
//! zeroed blocks, NaN/Inf storms, absurd finite values, broken gzip, a redrock file that is
//! missing or describes other targets, garbage RESOLUTION, a broken tile-compressed MASK).
//!
//! Mutant `i` of a corpus draws from its own random stream (ChaCha8, stream `i` of the seed), so a
//! corpus is the same bytes whatever the order it is made in, and any mutant can be remade alone.

pub mod check;
pub mod fits;

pub use check::{CorpusCheck, check_ingest_output};

use fits::{BLOCK, Hdu, hdus, set_card};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What was done to one file, for the corpus manifest.
pub type Damage = String;

#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    #[error("no source files to mutate")]
    NoSources,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FuzzError + '_ {
    move |source| FuzzError::File(crate::io::FileError::io(path, source))
}

/// One mutated input as written: the file(s) and what was done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mutant {
    pub file: PathBuf,
    pub source: PathBuf,
    pub damage: Vec<Damage>,
}

fn stream(seed: u64, i: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf022_5eed);
    rng.set_stream(i as u64);
    rng
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).ok()?;
    Some(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Big-endian f32 words that break readers: NaN, infinities, absurd and denormal finite values.
const STORM: &[f32] = &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
const EXTREMES: &[f32] = &[-2.06e33, 1.0e33, f32::MAX, f32::MIN, 1.0e-38, -1.0e-45, 1.0e20, -1.0e20];

/// Structural cards whose lies a reader must survive.
const STRUCTURAL: &[&str] = &["BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "TFIELDS", "ZNAXIS1", "ZNAXIS2"];

/// Applies one or two generic FITS damages to `bytes`.
fn damage_fits(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> Vec<Damage> {
    let n = if rng.random_bool(0.2) { 2 } else { 1 };
    (0..n).map(|_| damage_once(bytes, rng)).collect()
}

fn pick_hdu<'a>(h: &'a [Hdu], rng: &mut ChaCha8Rng, with_data: bool) -> Option<&'a Hdu> {
    let candidates: Vec<&Hdu> = h.iter().filter(|x| !with_data || !x.data.is_empty()).collect();
    candidates.choose(rng).copied()
}

fn damage_once(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> Damage {
    let h = hdus(bytes);
    if h.is_empty() || bytes.is_empty() {
        let at = rng.random_range(0..bytes.len().max(1));
        bytes.truncate(at);
        return format!("truncated unparsable file at byte {at}");
    }
    match rng.random_range(0..8) {
        0 => {
            let hdu = pick_hdu(&h, rng, false).expect("some HDU");
            let k = rng.random_range(1..=16);
            for _ in 0..k {
                let at = rng.random_range(hdu.header.clone());
                bytes[at] = rng.random();
            }
            format!("{k} byte(s) flipped in header of HDU at {}", hdu.header.start)
        }
        1 => match pick_hdu(&h, rng, true) {
            Some(hdu) => {
                let k = rng.random_range(1..=64);
                for _ in 0..k {
                    let at = rng.random_range(hdu.data.clone());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
                format!("{k} bit(s) flipped in data of HDU at {}", hdu.header.start)
            }
            None => lie(bytes, &h, rng),
        },
        2 => lie(bytes, &h, rng),
        3 => {
            // At a boundary (header or data start of an HDU, the end of the header cards) or between.
            let mut cuts: Vec<usize> = h.iter().flat_map(|x| [x.header.start, x.data.start, x.data.end]).collect();
            cuts.retain(|&c| c > 0 && c < bytes.len());
            let at = if !cuts.is_empty() && rng.random_bool(0.5) {
                *cuts.choose(rng).expect("non-empty")
            } else {
                rng.random_range(0..bytes.len())
            };
            bytes.truncate(at);
            format!("truncated at byte {at}")
        }
        4 => {
            let blocks = bytes.len() / BLOCK;
            let k = rng.random_range(1..=3.min(blocks.max(1)));
            for _ in 0..k {
                let b = rng.random_range(0..blocks.max(1));
                let end = ((b + 1) * BLOCK).min(bytes.len());
                bytes[b * BLOCK..end].fill(0);
            }
            format!("{k} block(s) zeroed")
        }
        5 | 6 => match pick_hdu(&h, rng, true) {
            Some(hdu) => {
                let storm = rng.random_bool(0.5);
                let words = (hdu.data.len() / 4).max(1);
                let share = [0.001, 0.05, 0.5, 1.0].choose(rng).copied().expect("non-empty");
                let k = ((words as f64 * share) as usize).max(1);
                for _ in 0..k {
                    let w = hdu.data.start + 4 * rng.random_range(0..words);
                    let v = if storm {
                        *STORM.choose(rng).expect("non-empty")
                    } else {
                        *EXTREMES.choose(rng).expect("non-empty")
                    };
                    if w + 4 <= bytes.len() {
                        bytes[w..w + 4].copy_from_slice(&v.to_be_bytes());
                    }
                }
                let what = if storm { "NaN/Inf storm" } else { "extreme finite values" };
                format!("{what}: {k} word(s) in data of HDU at {}", hdu.header.start)
            }
            None => lie(bytes, &h, rng),
        },
        _ => {
            // A single absurd pixel, the case a finiteness check alone lets through.
            match pick_hdu(&h, rng, true) {
                Some(hdu) => {
                    let w = hdu.data.start + 4 * rng.random_range(0..(hdu.data.len() / 4).max(1));
                    if w + 4 <= bytes.len() {
                        bytes[w..w + 4].copy_from_slice(&(-2.06e33f32).to_be_bytes());
                    }
                    format!("one word set to -2.06e33 at byte {w}")
                }
                None => lie(bytes, &h, rng),
            }
        }
    }
}

/// A structural card that lies: BITPIX, NAXISn, PCOUNT, TFIELDS, TFORMn, ZNAXISn.
fn lie(bytes: &mut [u8], h: &[Hdu], rng: &mut ChaCha8Rng) -> Damage {
    let hdu = h.choose(rng).expect("some HDU");
    let tforms: Vec<String> = hdu.cards.iter().map(|(k, _)| k.clone()).filter(|k| k.starts_with("TFORM")).collect();
    let keys: Vec<String> =
        STRUCTURAL.iter().map(|s| s.to_string()).filter(|k| hdu.card(k).is_some()).chain(tforms).collect();
    let Some(key) = keys.choose(rng).cloned() else {
        return "no structural card to lie in".into();
    };
    let offset = hdu.card(&key).expect("chosen from the cards");
    let old = hdu.value(bytes, &key).unwrap_or_default();
    let new = if key.starts_with("TFORM") {
        let (digits, code): (String, String) = old.chars().partition(|c| c.is_ascii_digit());
        let repeat: i64 = digits.parse().unwrap_or(1);
        match rng.random_range(0..3) {
            0 => format!("'{}{}'", repeat * 2 + 1, code),
            1 => format!("'{}{}'", repeat, ["E", "D", "J", "K", "A", "B", "X", "Q"].choose(rng).expect("non-empty")),
            _ => format!("'{}'", ["0E", "E", "99999999E", "Z", ""].choose(rng).expect("non-empty")),
        }
    } else if key == "BITPIX" {
        ["8", "16", "32", "64", "-32", "-64", "7", "0", "-8"].choose(rng).expect("non-empty").to_string()
    } else {
        let v: i64 = old.parse().unwrap_or(1);
        [0, -1, v + 1, v - 1, v * 2, 2_147_483_647, i64::MAX].choose(rng).expect("non-empty").to_string()
    };
    set_card(bytes, offset, &key, &new);
    format!("{key} of HDU at {} rewritten from {old} to {new}", hdu.header.start)
}

/// Damages the gzip stream itself: flipped bytes, a truncated member, a broken trailer or magic.
fn damage_gzip(gz: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> Damage {
    match rng.random_range(0..4) {
        0 => {
            let k = rng.random_range(1..=8);
            for _ in 0..k {
                let at = rng.random_range(10..gz.len().max(11)).min(gz.len() - 1);
                gz[at] ^= 1 << rng.random_range(0..8);
            }
            format!("gzip: {k} bit(s) flipped in the deflate stream")
        }
        1 => {
            let at = rng.random_range(0..gz.len());
            gz.truncate(at);
            format!("gzip: truncated at byte {at}")
        }
        2 => {
            let n = gz.len();
            for b in &mut gz[n.saturating_sub(8)..] {
                *b = rng.random();
            }
            "gzip: CRC and length trailer garbled".into()
        }
        _ => {
            gz[1] = 0x8c;
            "gzip: broken magic".into()
        }
    }
}

/// A mutant of one LAMOST file (either layout; gzip'd sources stay gzip'd).
pub fn mutate_lamost(source: &[u8], rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<Damage>) {
    match gunzip(source) {
        Some(mut inner) => {
            if rng.random_bool(0.25) {
                let mut gz = source.to_vec();
                let d = damage_gzip(&mut gz, rng);
                return (gz, vec![d]);
            }
            let d = damage_fits(&mut inner, rng);
            (gzip(&inner), d)
        }
        None => {
            let mut bytes = source.to_vec();
            let d = damage_fits(&mut bytes, rng);
            (bytes, d)
        }
    }
}

/// A mutant of a DESI coadd and its redrock file; `None` for the redrock means "leave it out".
pub fn mutate_desi(
    coadd: &[u8],
    redrock: Option<&[u8]>,
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Option<Vec<u8>>, Vec<Damage>) {
    let mut c = coadd.to_vec();
    let mut r = redrock.map(<[u8]>::to_vec);
    let mut damage = Vec::new();
    match rng.random_range(0..10) {
        0..=3 => damage.extend(damage_fits(&mut c, rng)),
        4 => {
            r = None;
            damage.push("redrock file missing".into());
        }
        5 => match r.as_mut() {
            Some(rb) => damage.push(redrock_other_targets(rb, rng)),
            None => damage.extend(damage_fits(&mut c, rng)),
        },
        6 => match r.as_mut() {
            Some(rb) => damage.push(redrock_other_rows(rb, rng)),
            None => damage.extend(damage_fits(&mut c, rng)),
        },
        7 => damage.push(garble_hdus(&mut c, "_RESOLUTION", rng)),
        8 => damage.push(garble_hdus(&mut c, "_MASK", rng)),
        _ => match r.as_mut() {
            Some(rb) => damage.extend(damage_fits(rb, rng).into_iter().map(|d| format!("redrock: {d}"))),
            None => damage.extend(damage_fits(&mut c, rng)),
        },
    }
    (c, r, damage)
}

/// Redrock rows that name other targets than the coadd's: TARGETIDs shifted, negated or shuffled.
fn redrock_other_targets(bytes: &mut [u8], rng: &mut ChaCha8Rng) -> Damage {
    let h = hdus(bytes);
    let Some(z) = h.iter().find(|x| x.extname(bytes) == "REDSHIFTS") else { return "redrock has no REDSHIFTS".into() };
    let Some((rows, _)) = z.column(bytes, "TARGETID") else { return "REDSHIFTS has no TARGETID".into() };
    let how = rng.random_range(0..3);
    for r in &rows {
        let at = z.data.start + r.start;
        if at + 8 > bytes.len() {
            break;
        }
        let id = i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let new = match how {
            0 => id.wrapping_add(1_000_003),
            1 => -id,
            _ => rng.random_range(1..1_000_000_000_000i64),
        };
        bytes[at..at + 8].copy_from_slice(&new.to_be_bytes());
    }
    format!("redrock TARGETIDs rewritten ({} rows, mode {how})", rows.len())
}

/// Redrock REDSHIFTS declaring another row count than it holds (fewer, or more than the data).
fn redrock_other_rows(bytes: &mut [u8], rng: &mut ChaCha8Rng) -> Damage {
    let h = hdus(bytes);
    let Some(z) = h.iter().find(|x| x.extname(bytes) == "REDSHIFTS") else { return "redrock has no REDSHIFTS".into() };
    let Some(n) = z.int(bytes, "NAXIS2") else { return "REDSHIFTS has no NAXIS2".into() };
    let new = [0, n - 1, n / 2, n + 1, n * 3].choose(rng).copied().expect("non-empty").max(0);
    set_card(bytes, z.card("NAXIS2").expect("read above"), "NAXIS2", &new.to_string());
    format!("redrock REDSHIFTS NAXIS2 {n} → {new}")
}

/// Random bytes, NaN or absurd values over the data of every HDU whose EXTNAME ends with `suffix`.
fn garble_hdus(bytes: &mut [u8], suffix: &str, rng: &mut ChaCha8Rng) -> Damage {
    let h = hdus(bytes);
    let targets: Vec<&Hdu> = h.iter().filter(|x| x.extname(bytes).ends_with(suffix) && !x.data.is_empty()).collect();
    let mode = rng.random_range(0..3);
    for hdu in &targets {
        let range = hdu.data.clone();
        match mode {
            0 => range.for_each(|i| bytes[i] = rng.random()),
            1 => {
                let len = bytes.len();
                for w in range.step_by(4).filter(|w| w + 4 <= len) {
                    bytes[w..w + 4].copy_from_slice(&f32::NAN.to_be_bytes());
                }
            }
            _ => {
                let k = (hdu.data.len() / 50).max(1);
                for _ in 0..k {
                    let i = rng.random_range(hdu.data.clone());
                    bytes[i] ^= 0xff;
                }
            }
        }
    }
    format!("{} HDU(s) *{suffix} garbled (mode {mode})", targets.len())
}

/// Writes mutants `ids` (e.g. `0..300`) of LAMOST files made from `sources` into `out`, mutant
/// `i` from stream `i`.
pub fn lamost_corpus(sources: &[PathBuf], out: &Path, ids: Range<usize>, seed: u64) -> Result<Vec<Mutant>, FuzzError> {
    if sources.is_empty() {
        return Err(FuzzError::NoSources);
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let originals: Vec<Vec<u8>> = sources.iter().map(|p| std::fs::read(p).map_err(io(p))).collect::<Result<_, _>>()?;
    ids.map(|i| {
        let mut rng = stream(seed, i);
        let s = rng.random_range(0..sources.len());
        let (bytes, damage) = mutate_lamost(&originals[s], &mut rng);
        let gz = if originals[s].starts_with(&[0x1f, 0x8b]) { ".gz" } else { "" };
        let file = out.join(format!("spec-fuzz-{i:06}.fits{gz}"));
        std::fs::write(&file, bytes).map_err(io(&file))?;
        Ok(Mutant { file, source: sources[s].clone(), damage })
    })
    .collect()
}

/// Writes mutants `ids` of DESI coadds (`coadd-fuzz-I.fits`, or `spectra-fuzz-I.fits` from a
/// per-exposure file, with `redrock-fuzz-I.fits` beside them unless the source has none or the
/// mutation removed it) made from `sources`, each a coadd with an optional redrock file.
pub fn desi_corpus(
    sources: &[(PathBuf, Option<PathBuf>)],
    out: &Path,
    ids: Range<usize>,
    seed: u64,
) -> Result<Vec<Mutant>, FuzzError> {
    if sources.is_empty() {
        return Err(FuzzError::NoSources);
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut originals = Vec::new();
    for (c, r) in sources {
        let coadd = std::fs::read(c).map_err(io(c))?;
        let redrock = r.as_ref().map(|p| std::fs::read(p).map_err(io(p))).transpose()?;
        originals.push((coadd, redrock));
    }
    ids.map(|i| {
        let mut rng = stream(seed, i);
        let s = rng.random_range(0..sources.len());
        let (coadd, redrock) = &originals[s];
        let (c, r, damage) = mutate_desi(coadd, redrock.as_deref(), &mut rng);
        // Per-exposure `spectra-*` files stay `spectra-*`: ingest reads them by that name.
        let per_exposure = sources[s].0.file_name().is_some_and(|n| n.to_string_lossy().starts_with("spectra-"));
        let prefix = if per_exposure { "spectra" } else { "coadd" };
        let file = out.join(format!("{prefix}-fuzz-{i:06}.fits"));
        std::fs::write(&file, c).map_err(io(&file))?;
        if let Some(r) = r {
            let rr = out.join(format!("redrock-fuzz-{i:06}.fits"));
            std::fs::write(&rr, r).map_err(io(&rr))?;
        }
        Ok(Mutant { file, source: sources[s].0.clone(), damage })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutant_is_the_same_bytes_whatever_the_order_it_is_made_in() {
        let src = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/real/lamost/image5xN/spec-58397-EG014118N254444M01_sp03-031.fits"
        ))
        .unwrap();
        let make = |i: usize| mutate_lamost(&src, &mut stream(9, i));
        let forward: Vec<_> = (0..20).map(make).collect();
        let backward: Vec<_> = (0..20).rev().map(make).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert!(forward.iter().all(|(_, d)| !d.is_empty()), "every mutant says what was done");
        // A lie can repeat the truth (BITPIX -32 → -32), a zeroed block can be zero already.
        assert!(forward.iter().filter(|(b, _)| *b != src).count() >= 15);
    }
}
