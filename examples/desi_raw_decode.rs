//! Benchmark baseline: the raw cfitsio decode rate of the pixel data starpipe needs from a DESI
//! coadd (every arm's FLUX, IVAR and MASK, all rows), with nothing else done.
//! Usage: cargo run --release --example desi_raw_decode -- MANIFEST
//! Prints files, rows and seconds; `scripts/bench/ingest.sh` compares starpipe's rate against it.

use fitsio::FitsFile;
use std::collections::HashMap;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::env::args().nth(1).ok_or("usage: desi_raw_decode MANIFEST")?;
    let paths: Vec<String> =
        std::fs::read_to_string(manifest)?.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    let start = Instant::now();
    let (mut rows, mut checksum) = (0usize, 0f64);
    for p in &paths {
        let mut f = FitsFile::open(p)?;
        // HDU numbers from one pass over the file: looking each HDU up by name makes cfitsio walk
        // the file from the start every time, which would handicap this baseline.
        let mut number = HashMap::new();
        let count = f.num_hdus()?;
        for i in 0..count {
            let hdu = f.hdu(i)?;
            if let Ok(name) = hdu.name(&mut f) {
                number.insert(name.trim().to_string(), i);
            }
        }
        for arm in ["B", "R", "Z"] {
            let Some(&flux_number) = number.get(&format!("{arm}_FLUX")) else { continue };
            let flux = f.hdu(flux_number)?;
            let v: Vec<f32> = flux.read_image(&mut f)?;
            let ivar: Vec<f32> = f.hdu(number[&format!("{arm}_IVAR")])?.read_image(&mut f)?;
            let mask: Vec<i64> = f.hdu(number[&format!("{arm}_MASK")])?.read_image(&mut f)?;
            checksum += v[0] as f64 + ivar[0] as f64 + mask[0] as f64;
            if arm == "B" {
                rows += match &flux.info {
                    fitsio::hdu::HduInfo::ImageInfo { shape, .. } => shape[0],
                    _ => 0,
                };
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} files, {rows} rows, {secs:.3} s (checksum {checksum:.3})", paths.len());
    Ok(())
}
