//! A task's share of an ordered list (input files, shards): `--shard i/N`.

use std::fmt;
use std::str::FromStr;

/// `--shard i/N`: task `i` (0-based) of `N` takes inputs `i, i+N, i+2N, …` of the ordered list, so
/// tasks get equal shares even when file sizes drift along the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("'{s}' is not of the form i/N"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("shard index '{i}' is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("shard count '{n}' is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= i < N"));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    pub fn select<T: Clone>(&self, all: &[T]) -> Vec<T> {
        all.iter().skip(self.index).step_by(self.count).cloned().collect()
    }

    /// File-name tag, e.g. `00003-of-00010`.
    pub fn tag(&self) -> String {
        format!("{:05}-of-{:05}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_inputs() {
        let all: Vec<usize> = (0..23).collect();
        let mut union: Vec<usize> = (0..4).flat_map(|i| ShardSpec { index: i, count: 4 }.select(&all)).collect();
        union.sort();
        assert_eq!(union, all);
        assert_eq!(ShardSpec { index: 1, count: 4 }.select(&all)[..3], [1, 5, 9]);
    }

    #[test]
    fn shard_spec_parses_and_rejects() {
        assert_eq!("2/8".parse::<ShardSpec>(), Ok(ShardSpec { index: 2, count: 8 }));
        assert!("8/8".parse::<ShardSpec>().is_err());
        assert!("x/8".parse::<ShardSpec>().is_err());
        assert!("3".parse::<ShardSpec>().is_err());
    }
}
