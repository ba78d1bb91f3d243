//! The boundaries ARCHITECTURE.md states, checked on the source: a module may use only the
//! modules its layer allows, and the contracts owned by one module are spelt nowhere else.
//! Comments and `#[cfg(test)]` code are not checked (tests may reach across).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each library module and the modules it may use (`crate::X`). Ground floors first.
const ALLOWED: &[(&str, &[&str])] = &[
    ("io", &[]),
    ("artifacts", &[]),
    ("schema", &[]),
    ("grid", &[]),
    ("spectrum", &[]),
    ("progress", &[]),
    ("labels", &[]),
    ("nn", &["io"]),
    ("preprocess", &["grid", "spectrum"]),
    ("ingest", &["artifacts", "grid", "io", "preprocess", "progress", "schema", "spectrum"]),
    ("mock", &["grid", "io", "labels", "preprocess", "schema", "spectrum"]),
    // model's χ² check renders the emulator at the predicted labels (see EXCEPTIONS).
    ("model", &["artifacts", "grid", "io", "labels", "mock", "nn", "preprocess", "progress", "schema"]),
    ("encoder", &["artifacts", "grid", "io", "labels", "model", "nn", "progress", "schema"]),
    ("catalog", &["artifacts", "io", "schema"]),
    ("report", &["artifacts", "catalog", "ingest", "io", "schema"]),
    ("fuzz", &["artifacts", "io"]),
    ("pipeline", &["artifacts", "ingest", "io"]),
];

/// Narrower rules inside an allowed edge: (module, path prefix it uses, files allowed to).
const EXCEPTIONS: &[(&str, &str, &[&str])] = &[("model", "crate::mock::", &["src/model/reconstruction.rs"])];

/// Paths a module must never use even where its layer allows the module.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("encoder", "crate::model::mlp", "the encoder shares nn, not the MLP"),
    ("encoder", "crate::model::fit", "the encoder has its own training loop"),
    ("report", "crate::ingest::run", "report reads ingest's report parts, not its internals"),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// `crate::X…` paths a file uses, as written (`use crate::{a, b}` groups are expanded).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let tail = &rest[i + "crate::".len()..];
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                out.push(format!("crate::{}", part.trim()));
            }
        } else {
            let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
            out.push(format!("crate::{}", &tail[..end]));
        }
        rest = tail;
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Library modules: the folders and files under src/ but the binary's.
fn library_modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(src()).unwrap().flatten() {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if ["main", "lib", "cli"].contains(&name.as_str()) {
            continue;
        }
        m.insert(name, if p.is_dir() { rust_files(&p) } else { vec![p] });
    }
    m
}

#[test]
fn every_module_uses_only_what_its_layer_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let modules = library_modules();
    let mut broken = Vec::new();
    for (module, files) in &modules {
        let Some(ok) = allowed.get(module.as_str()) else {
            broken.push(format!("module {module} is not in the layer table (ALLOWED, ARCHITECTURE.md)"));
            continue;
        };
        for file in files {
            let rel = file.strip_prefix(src().parent().unwrap()).unwrap().to_string_lossy().into_owned();
            for path in crate_paths(&code(file)) {
                let target = path.trim_start_matches("crate::").split("::").next().unwrap_or("");
                if !modules.contains_key(target) || target == module {
                    continue;
                }
                if !ok.contains(target) {
                    broken.push(format!("{rel}: {module} uses {path}"));
                }
                for (m, prefix, files) in EXCEPTIONS {
                    if m == module && path.starts_with(prefix) && !files.contains(&rel.as_str()) {
                        broken.push(format!("{rel}: {path} (only {files:?} may)"));
                    }
                }
                for (m, prefix, why) in FORBIDDEN {
                    if m == module && path.starts_with(prefix) {
                        broken.push(format!("{rel}: {path}: {why}"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "layer rules broken:\n  {}", broken.join("\n  "));
}

#[test]
fn contracts_are_spelt_only_by_their_owner() {
    // (what, the text that spells it, the only place allowed to).
    let rules: &[(&str, &str, &str)] = &[
        ("renaming a temporary file into place", "fs::rename(", "src/io/"),
        ("a metadata key", "\"starpipe.", "src/artifacts/"),
        ("a prediction shard name", "\"predictions-", "src/artifacts/"),
        ("an embedding shard name", "\"embeddings-", "src/artifacts/"),
        ("an ingest summary name", "\"ingest-summary-", "src/artifacts/"),
    ];
    let root = src().parent().unwrap().to_path_buf();
    let mut broken = Vec::new();
    for file in rust_files(&src()) {
        let rel = file.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        let code = code(&file);
        for (what, text, owner) in rules {
            if code.contains(text) && !rel.starts_with(owner) {
                broken.push(format!("{rel} spells {what} ({text}…): ask {owner}"));
            }
        }
    }
    assert!(broken.is_empty(), "contracts spelt outside their owner:\n  {}", broken.join("\n  "));
}

#[test]
fn the_binary_holds_only_the_command_line() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    let code_lines = main.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).count();
    assert!(code_lines <= 6, "src/main.rs should only call cli::main ({code_lines} lines of code)");
    // The library never reaches into the binary's command line.
    for file in rust_files(&src()) {
        if file.starts_with(src().join("cli")) || file.ends_with("main.rs") {
            continue;
        }
        assert!(!code(&file).contains("crate::cli"), "{} uses the binary's cli module", file.display());
    }
}
