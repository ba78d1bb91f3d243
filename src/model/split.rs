//! Deterministic data splits by object id.
//!
//! Membership depends only on the object's key and the split seed, never on file order or on which
//! other objects are present, so `finetune` (which must never see test stars) and `evaluate` (which
//! scores only them) agree without sharing any state beyond the two numbers in the adapter card.

use serde::{Deserialize, Serialize};

/// A uniform number in [0, 1) from an object key and a seed (SplitMix64 finaliser).
pub fn unit_hash(key: i64, seed: u64) -> f64 {
    let mut z = (key as u64) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The held-out test split of a labelled set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestSplit {
    pub seed: u64,
    /// Fraction of objects reserved for evaluation.
    pub test_fraction: f64,
}

impl Default for TestSplit {
    fn default() -> Self {
        Self { seed: 2602, test_fraction: 0.3 }
    }
}

impl TestSplit {
    pub fn is_test(&self, key: i64) -> bool {
        unit_hash(key, self.seed) < self.test_fraction
    }

    /// The first `n` keys of the non-test pool in hash order, split into (train, validation).
    /// A larger `n` extends a smaller one, so results for several `--n-train` are nested.
    pub fn training_subset(&self, keys: &[i64], n: usize, val_fraction: f64) -> (Vec<i64>, Vec<i64>) {
        let mut pool: Vec<(f64, i64)> =
            keys.iter().filter(|&&k| !self.is_test(k)).map(|&k| (unit_hash(k, self.seed ^ 0x5EED), k)).collect();
        pool.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        pool.dedup_by_key(|p| p.1);
        pool.truncate(n);
        let n_val = if pool.len() < 5 { 0 } else { ((pool.len() as f64 * val_fraction).round() as usize).max(2) };
        // Every fifth-or-so member goes to validation, so both parts span the same hash range.
        let mut train = Vec::new();
        let mut val = Vec::new();
        for (i, (_, k)) in pool.iter().enumerate() {
            let due = ((i + 1) * n_val) / pool.len().max(1) > (i * n_val) / pool.len().max(1);
            if due { val.push(*k) } else { train.push(*k) }
        }
        (train, val)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fraction_is_respected_and_independent_of_other_keys() {
        let s = TestSplit::default();
        let n = (0..20_000).filter(|&k| s.is_test(k)).count();
        assert!((n as f64 / 20_000.0 - 0.3).abs() < 0.015, "{n}");
        // A key's fate depends on (key, seed) only: another seed reshuffles about 2·0.3·0.7 of
        // the keys, and a larger fraction only adds test keys (never moves one out).
        let other = TestSplit { seed: s.seed + 1, ..s };
        let moved = (0..20_000).filter(|&k| s.is_test(k) != other.is_test(k)).count();
        assert!((moved as f64 / 20_000.0 - 0.42).abs() < 0.02, "{moved}");
        let wider = TestSplit { test_fraction: 0.5, ..s };
        assert!((0..20_000).all(|k| !s.is_test(k) || wider.is_test(k)));
    }

    #[test]
    fn training_subsets_are_nested_and_disjoint_from_test() {
        let s = TestSplit::default();
        let keys: Vec<i64> = (1000..6000).collect();
        let (t50, v50) = s.training_subset(&keys, 50, 0.2);
        let (t500, v500) = s.training_subset(&keys, 500, 0.2);
        assert_eq!(t50.len() + v50.len(), 50);
        assert_eq!(v50.len(), 10);
        assert_eq!(v500.len(), 100);
        let big: std::collections::HashSet<i64> = t500.iter().chain(&v500).copied().collect();
        assert!(t50.iter().chain(&v50).all(|k| big.contains(k)));
        assert!(big.iter().all(|&k| !s.is_test(k)));
        assert!(t50.iter().all(|k| !v50.contains(k)));
    }
}
