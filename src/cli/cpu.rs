//! The instruction sets this build assumes (x86-64-v3 by default: `.cargo/config.toml`), checked
//! before anything else runs: a clear refusal instead of an illegal-instruction crash on an older CPU.

/// The features the build was compiled for that this CPU lacks, if any.
pub fn missing_features() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        // (name, compiled for it, this CPU has it)
        let features = [
            ("AVX2", cfg!(target_feature = "avx2"), std::arch::is_x86_feature_detected!("avx2")),
            ("FMA", cfg!(target_feature = "fma"), std::arch::is_x86_feature_detected!("fma")),
            ("BMI2", cfg!(target_feature = "bmi2"), std::arch::is_x86_feature_detected!("bmi2")),
        ];
        let missing: Vec<&str> = features.iter().filter(|(_, built, has)| *built && !has).map(|f| f.0).collect();
        (!missing.is_empty()).then(|| missing.join(", "))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The refusal, naming what is missing and how to build for this CPU.
pub fn refusal(missing: &str) -> String {
    format!(
        "this starpipe was built for x86-64-v3 CPUs and this CPU lacks {missing}; build one for it with \
         RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release (README: Benchmarks)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_machine_has_what_the_build_assumes_and_the_refusal_says_how_to_rebuild() {
        // Tests run on the machine that built them, which must be able to run its own build.
        assert_eq!(missing_features(), None);
        let r = refusal("AVX2, FMA");
        assert!(r.contains("lacks AVX2, FMA") && r.contains("target-cpu=x86-64\""), "{r}");
    }
}
