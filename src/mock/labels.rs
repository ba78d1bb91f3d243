//! Stellar labels for mock surveys: a Milky Way-like mix of dwarfs and giants.
//!
//! Not a Galaxy model, a plausible census: dwarfs along a main-sequence locus (log g falling from
//! ~4.7 at 3800 K to ~4.0 at 8000 K), subgiants, red-giant-branch stars along a locus that shifts
//! hotter with decreasing [Fe/H], and red-clump giants. [Fe/H] mixes thin disc, thick disc and a
//! halo tail down to −2.5, so about one star in ten is metal-poor ([Fe/H] < −1), enough to test
//! the metal-poor regime. All labels stay where MILES has stars (Teff 3800–8000 K by default).

use rand::Rng;
use rand_distr::{Distribution, Normal};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StarLabels {
    pub teff: f64,
    pub logg: f64,
    pub feh: f64,
}

/// Where labels may fall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelRange {
    pub teff: (f64, f64),
    pub feh: (f64, f64),
}

impl Default for LabelRange {
    fn default() -> Self {
        Self { teff: (3800.0, 8000.0), feh: (-2.5, 0.5) }
    }
}

fn normal(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).expect("finite sd").sample(rng)
}

fn draw_feh(rng: &mut impl Rng, range: LabelRange) -> f64 {
    loop {
        let u: f64 = rng.random();
        let feh = if u < 0.78 {
            normal(rng, -0.1, 0.22) // thin disc
        } else if u < 0.92 {
            normal(rng, -0.6, 0.25) // thick disc
        } else {
            normal(rng, -1.6, 0.5) // halo
        };
        if (range.feh.0..=range.feh.1).contains(&feh) {
            return feh;
        }
    }
}

/// Draws one star.
pub fn draw_star(rng: &mut impl Rng, range: LabelRange) -> StarLabels {
    let feh = draw_feh(rng, range);
    loop {
        let u: f64 = rng.random();
        let (teff, logg) = if u < 0.62 {
            // Main sequence: cooler dwarfs are more common.
            let teff = range.teff.0 + (range.teff.1 - range.teff.0) * rng.random::<f64>().powf(1.3);
            (teff, 4.72 - 0.17 * (teff - 3800.0) / 1000.0 + normal(rng, 0.0, 0.08))
        } else if u < 0.72 {
            // Subgiants.
            (normal(rng, 5600.0, 450.0), 3.55 + 0.4 * rng.random::<f64>())
        } else if u < 0.90 {
            // Red giant branch: log g from 1.0 to 3.4, hotter at lower [Fe/H].
            let logg = 1.0 + 2.4 * rng.random::<f64>();
            (4000.0 + 450.0 * (logg - 1.0) - 280.0 * feh + normal(rng, 0.0, 70.0), logg)
        } else {
            // Red clump.
            (normal(rng, 4750.0, 110.0) - 120.0 * feh.min(0.0), normal(rng, 2.45, 0.1))
        };
        if (range.teff.0..=range.teff.1).contains(&teff) && (0.5..=5.2).contains(&logg) {
            return StarLabels { teff, logg, feh };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_mix_has_dwarfs_giants_and_a_metal_poor_tail_within_range() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let stars: Vec<StarLabels> = (0..5000).map(|_| draw_star(&mut rng, LabelRange::default())).collect();
        let frac = |f: &dyn Fn(&StarLabels) -> bool| stars.iter().filter(|s| f(s)).count() as f64 / stars.len() as f64;
        assert!(stars.iter().all(|s| (3800.0..=8000.0).contains(&s.teff) && (-2.5..=0.5).contains(&s.feh)));
        let giants = frac(&|s| s.logg < 3.5);
        assert!((0.2..0.45).contains(&giants), "giant fraction {giants}");
        let metal_poor = frac(&|s| s.feh < -1.0);
        assert!((0.05..0.2).contains(&metal_poor), "metal-poor fraction {metal_poor}");
        assert!(frac(&|s| s.feh < -2.0) > 0.005, "a tail below -2");
    }

    #[test]
    fn a_seed_reproduces_its_stars() {
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..10).map(|_| draw_star(&mut rng, LabelRange::default())).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
