//! Value parsers for command-line flags: absurd values are refused while the command line is
//! parsed, so `starpipe run`'s pre-flight (which runs this parser on every stage) catches them in a
//! pipeline file with its key and line, before any work.

/// The most tasks a sharded stage may have (`pipeline::spec::MAX_SHARDS`).
pub const MAX_SHARDS: usize = starpipe::pipeline::spec::MAX_SHARDS;

/// A count that must be positive.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A shard count: 1 to [`MAX_SHARDS`].
pub fn shard_count(s: &str) -> Result<usize, String> {
    let n = at_least_one(s)?;
    if n > MAX_SHARDS {
        return Err(format!("at most {MAX_SHARDS} shards"));
    }
    Ok(n)
}

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if !v.is_finite() {
        return Err("must be a finite number".into());
    }
    Ok(v)
}

/// A fraction in [0, 1].
pub fn fraction(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err("must be within 0..1".into());
    }
    Ok(v)
}

/// A fraction in [0, 1) (a share held out, a dropout rate: all of it would leave nothing).
pub fn fraction_below_one(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if !(0.0..1.0).contains(&v) {
        return Err("must be within [0, 1)".into());
    }
    Ok(v)
}

/// A positive finite number (a rate, a resolving power, a scale).
pub fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v <= 0.0 {
        return Err("must be positive".into());
    }
    Ok(v)
}

/// A finite number ≥ 0 (a decay, a threshold).
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v < 0.0 {
        return Err("must not be negative".into());
    }
    Ok(v)
}

/// `--device`: auto, cpu, or cuda where this binary can use it; a binary without the `cuda`
/// feature refuses cuda here, so a pipeline that asks for a GPU it cannot have is stopped by the
/// pre-flight, not by its GPU stage hours later.
pub fn device(s: &str) -> Result<starpipe::nn::device::ComputeDevice, String> {
    use clap::ValueEnum;
    use starpipe::nn::device::ComputeDevice;
    let d = ComputeDevice::from_str(s, true).map_err(|_| format!("'{s}' is not auto, cpu or cuda"))?;
    if d == ComputeDevice::Cuda && !cfg!(feature = "cuda") {
        return Err("this starpipe was built without the `cuda` feature: use --device auto or cpu, or a binary \
                    built with --features cuda (DEVELOPERS.md: GPU build)"
            .into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_values_are_refused_at_their_boundaries() {
        assert!(at_least_one("0").is_err() && at_least_one("1").is_ok() && at_least_one("-1").is_err());
        assert!(shard_count("100000").is_ok() && shard_count("100001").is_err() && shard_count("1000000000").is_err());
        assert!(
            fraction("1").is_ok()
                && fraction("0").is_ok()
                && fraction("1.0001").is_err()
                && fraction("-0.0001").is_err()
        );
        assert!(fraction_below_one("0.999").is_ok() && fraction_below_one("1").is_err());
        assert!(
            positive("1e-9").is_ok() && positive("0").is_err() && positive("inf").is_err() && positive("NaN").is_err()
        );
        assert!(non_negative("0").is_ok() && non_negative("-1e-9").is_err());
        assert!(device("auto").is_ok() && device("CPU").is_ok() && device("gpu").is_err());
        assert_eq!(device("cuda").is_ok(), cfg!(feature = "cuda"));
    }
}
