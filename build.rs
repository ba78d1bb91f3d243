// With the `cuda` feature, candle-kernels links -lcudart: point the linker at $CUDA_HOME/lib
// (the toolchain assembled by make_cuda_home.sh; see README "GPU").
fn main() {
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        if let Some(home) = std::env::var_os("CUDA_HOME") {
            println!("cargo:rustc-link-search=native={}", std::path::Path::new(&home).join("lib").display());
        }
    }
}
