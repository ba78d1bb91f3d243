// With the `cuda` feature, candle-kernels links cudart (`-lcudart`). Linked dynamically, the
// binary would need libcudart.so.13 at start and fail on machines without CUDA (login nodes, CPU
// partitions); so the link finds only the static runtime: a folder holding `libcudart.a`, a link to
// `$CUDA_HOME`'s `libcudart_static.a` (scripts/gpu/make_cuda_home.sh provides it). Everything
// else CUDA is loaded at run time (vendor/candle-core/STARPIPE.md).
use std::path::{Path, PathBuf};

fn main() {
    column_constants();
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let Some(home) = std::env::var_os("CUDA_HOME").map(PathBuf::from) else {
        println!("cargo:warning=CUDA_HOME is not set: the cuda build needs it (scripts/gpu/build.sh)");
        return;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("cudart-static");
    match find_static_cudart(&home) {
        Some(archive) => {
            println!("cargo:rerun-if-changed={}", archive.display());
            std::fs::create_dir_all(&out).expect("create OUT_DIR/cudart-static");
            let link = out.join("libcudart.a");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&archive, &link).expect("link libcudart.a");
            println!("cargo:rustc-link-search=native={}", out.display());
            // What the static runtime needs from the system (part of libc since glibc 2.34).
            for lib in ["dl", "rt", "pthread"] {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
        }
        None => {
            println!(
                "cargo:warning=no libcudart_static.a under {}: linking cudart dynamically, so the binary \
                 will need libcudart.so.13 to start",
                home.display()
            );
            println!("cargo:rustc-link-search=native={}", home.join("lib").display());
        }
    }
}

fn find_static_cudart(home: &Path) -> Option<PathBuf> {
    ["lib", "lib64", "targets/x86_64-linux/lib"]
        .iter()
        .map(|d| home.join(d).join("libcudart_static.a"))
        .find(|p| p.exists())
        .and_then(|p| p.canonicalize().ok())
}

/// One `pub mod TABLE { pub const COLUMN: &str = "column"; … }` per `schemas/*.toml`, so code names a
/// column through the schema that defines it (`schema::columns`) and a new column touches one file.
fn column_constants() {
    #[derive(serde::Deserialize)]
    struct Table {
        name: String,
        columns: Vec<Column>,
    }
    #[derive(serde::Deserialize)]
    struct Column {
        name: String,
        unit: String,
        description: String,
    }
    println!("cargo:rerun-if-changed=schemas");
    let mut files: Vec<PathBuf> = std::fs::read_dir("schemas")
        .expect("schemas/ beside Cargo.toml")
        .map(|e| e.expect("schemas/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut code = String::new();
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).expect("read a schema");
        let table: Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        code += &format!("/// Columns of `{}` ({}).\npub mod {} {{\n", table.name, path.display(), table.name);
        let mut seen = std::collections::BTreeSet::new();
        for c in &table.columns {
            let ident = c.name.to_ascii_uppercase();
            assert!(seen.insert(ident.clone()), "{}: two columns named {ident} in any case", path.display());
            let unit = if c.unit.is_empty() { String::new() } else { format!(" [{}]", c.unit) };
            code += &format!(
                "    /// {}{}\n    pub const {ident}: &str = {:?};\n",
                c.description.replace('\n', " "),
                unit,
                c.name
            );
        }
        code += "}\n";
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("columns.rs");
    std::fs::write(out, code).expect("write OUT_DIR/columns.rs");
}
