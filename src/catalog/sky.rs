//! HEALPix indexing and HATS partitioning (catalog-conventions.md §4).
//!
//! Every row carries `_healpix_29`, its order-29 NESTED pixel; the pixel at a coarser order k is a
//! right shift, so a histogram at one fine order answers every coarser question. Partitions are
//! the HATS rule: a pixel is split into its four children until it holds at most `max_rows` rows.

use std::collections::BTreeMap;

pub const HEALPIX_ORDER: u8 = 29;

/// Order-29 NESTED index of (ra, dec) in degrees (cdshealpix, the library the `hats` package uses).
pub fn healpix_29(ra_deg: f64, dec_deg: f64) -> i64 {
    let lon = ra_deg.rem_euclid(360.0).to_radians();
    let lat = dec_deg.clamp(-90.0, 90.0).to_radians();
    cdshealpix::nested::hash(HEALPIX_ORDER, lon, lat) as i64
}

/// The pixel containing `h29` at `order`.
pub fn pixel_at(h29: i64, order: u8) -> u64 {
    (h29 as u64) >> (2 * (HEALPIX_ORDER - order) as u32)
}

/// A HATS leaf: one pixel at one order and the rows it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    pub order: u8,
    pub pixel: u64,
    pub rows: u64,
}

impl Partition {
    /// `Dir` of the HATS path: the pixel number rounded down to a multiple of 10,000.
    pub fn dir(&self) -> u64 {
        self.pixel / 10_000 * 10_000
    }

    /// Leaf path relative to the catalogue root.
    pub fn path(&self) -> String {
        format!("dataset/Norder={}/Dir={}/Npix={}.parquet", self.order, self.dir(), self.pixel)
    }

    /// Whether the order-29 index falls in this partition.
    pub fn contains(&self, h29: i64) -> bool {
        pixel_at(h29, self.order) == self.pixel
    }
}

/// Row counts per pixel at a fixed order.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub order: u8,
    pub counts: BTreeMap<u64, u64>,
}

impl Histogram {
    pub fn new(order: u8) -> Self {
        Self { order, counts: BTreeMap::new() }
    }

    pub fn add(&mut self, h29: i64, rows: u64) {
        *self.counts.entry(pixel_at(h29, self.order)).or_default() += rows;
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    fn rows_in(&self, order: u8, pixel: u64) -> u64 {
        let shift = 2 * (self.order - order) as u32;
        self.counts.range(pixel << shift..(pixel + 1) << shift).map(|(_, n)| n).sum()
    }

    /// HATS leaves: each occupied order-0 pixel, split into its children while it holds more than
    /// `max_rows` (down to the histogram's order, where a pixel cannot be split further).
    pub fn partitions(&self, max_rows: u64) -> Vec<Partition> {
        let mut out = Vec::new();
        let mut stack: Vec<(u8, u64)> = (0..12).rev().map(|p| (0, p)).collect();
        while let Some((order, pixel)) = stack.pop() {
            let rows = self.rows_in(order, pixel);
            if rows == 0 {
                continue;
            }
            if rows <= max_rows || order == self.order {
                out.push(Partition { order, pixel, rows });
            } else {
                stack.extend((0..4).rev().map(|c| (order + 1, pixel * 4 + c)));
            }
        }
        out
    }
}

/// Finds the partition of an order-29 index among sorted, disjoint partitions.
pub fn partition_of(parts: &[Partition], h29: i64) -> Option<usize> {
    // Partitions at mixed orders are disjoint ranges of order-29 indices: compare range starts.
    let start = |p: &Partition| p.pixel << (2 * (HEALPIX_ORDER - p.order) as u32);
    let key = h29 as u64;
    let i = parts.partition_point(|p| start(p) <= key);
    (i > 0 && parts[i - 1].contains(h29)).then(|| i - 1)
}

/// Sorts partitions by their position on the order-29 curve (the order `partition_of` needs).
pub fn sort_partitions(parts: &mut [Partition]) {
    parts.sort_by_key(|p| p.pixel << (2 * (HEALPIX_ORDER - p.order) as u32));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn known_pixels_and_shifts() {
        // The north pole at order 0 is in pixel 0..3 (base pixels 0-3 touch it); the point
        // (ra 45°, dec 0) lies on the boundary between base pixels 4 and 0 at order 0.
        let h = healpix_29(45.0, 89.999);
        assert!(pixel_at(h, 0) < 4);
        let south = healpix_29(45.0, -89.999);
        assert!((8..12).contains(&pixel_at(south, 0)));
        // Coarsening by shifts agrees with hashing at that order directly.
        for &(ra, dec) in &[(10.0, 20.0), (200.5, -45.3), (359.9, 0.1), (123.456, 67.8)] {
            let h = healpix_29(ra, dec);
            for order in [0u8, 5, 6, 11] {
                let direct = cdshealpix::nested::hash(order, f64::to_radians(ra), f64::to_radians(dec));
                assert_eq!(pixel_at(h, order), direct, "{ra} {dec} order {order}");
            }
        }
    }

    #[test]
    fn a_desi_sized_catalogue_partitions_within_bounds() {
        // 4 M positions in a DESI-like footprint (|b| > 20°-ish band of dec −20…+80), histogram only.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut hist = Histogram::new(10);
        let n = 4_000_000u64;
        for _ in 0..n {
            let ra: f64 = rng.random_range(0.0..360.0);
            let sin_dec: f64 = rng.random_range(-0.34..0.98);
            // Denser near the Galactic plane-ish band: half the stars in a 20° strip.
            let dec =
                if rng.random::<f64>() < 0.5 { rng.random_range(10.0..30.0) } else { sin_dec.asin().to_degrees() };
            hist.add(healpix_29(ra, dec), 1);
        }
        let max_rows = 100_000;
        let mut parts = hist.partitions(max_rows);
        assert_eq!(parts.iter().map(|p| p.rows).sum::<u64>(), n);
        assert!(parts.iter().all(|p| p.rows <= max_rows), "a partition over the bound");
        // Balanced: no tiny partitions except where the footprint edge cuts a pixel.
        let median = {
            let mut r: Vec<u64> = parts.iter().map(|p| p.rows).collect();
            r.sort();
            r[r.len() / 2]
        };
        assert!(median > max_rows / 8, "median partition {median}");
        sort_partitions(&mut parts);
        // Every position finds exactly its partition.
        for _ in 0..10_000 {
            let h = healpix_29(rng.random_range(0.0..360.0), rng.random_range(-20.0..80.0));
            let i = partition_of(&parts, h);
            let brute: Vec<usize> = (0..parts.len()).filter(|&k| parts[k].contains(h)).collect();
            assert_eq!(i.map(|i| vec![i]).unwrap_or_default(), brute);
        }
    }
}
