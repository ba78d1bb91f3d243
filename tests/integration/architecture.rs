//! The boundaries ARCHITECTURE.md states, checked on the source: a module may use only the
//! modules its layer allows, and the contracts owned by one module are spelt nowhere else.
//! Comments and `#[cfg(test)]` code are not checked (tests may reach across).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each library module and the modules it may use (`crate::X`). Ground floors first.
const ALLOWED: &[(&str, &[&str])] = &[
    ("io", &[]),
    ("artifacts", &["io"]),
    ("schema", &[]),
    ("grid", &[]),
    ("spectrum", &[]),
    ("progress", &[]),
    // FITS in and out, knowing no survey.
    ("fits", &[]),
    ("labels", &["io"]),
    ("nn", &["io"]),
    // Shards → feature blocks and the per-shard runner: the floor model and encoder share.
    ("shards", &["artifacts", "grid", "io", "progress", "schema"]),
    ("preprocess", &["grid", "spectrum"]),
    ("ingest", &["artifacts", "fits", "grid", "io", "preprocess", "progress", "schema", "spectrum"]),
    ("mock", &["fits", "grid", "io", "labels", "preprocess", "schema", "spectrum"]),
    // What a prediction is checked against; the χ² check renders the emulator at the predicted
    // labels (see EXCEPTIONS). Knows no network.
    ("trust", &["artifacts", "grid", "io", "mock", "preprocess", "schema", "shards"]),
    ("model", &["artifacts", "grid", "io", "labels", "nn", "preprocess", "progress", "schema", "shards", "trust"]),
    // Scoring and fitting errors above the models; nothing below uses it.
    ("validate", &["artifacts", "io", "labels", "model", "nn", "schema", "shards", "trust"]),
    // Never `model`: the encoder and the MLPs share only the floors below both.
    ("encoder", &["artifacts", "grid", "io", "labels", "nn", "progress", "schema", "shards"]),
    ("catalog", &["artifacts", "io", "schema"]),
    // The report draws chosen spectra with their reconstruction (`trust`), never a network.
    ("report", &["artifacts", "catalog", "grid", "ingest", "io", "schema", "trust"]),
    ("fuzz", &["artifacts", "io", "schema"]),
    ("pipeline", &["artifacts", "ingest", "io"]),
];

/// Narrower rules inside an allowed edge: (module, path prefix it uses, files allowed to).
const EXCEPTIONS: &[(&str, &str, &[&str])] = &[("trust", "crate::mock::", &["src/trust/reconstruction.rs"])];

/// Files that read DESI's per-exposure `spectra-*.fits` inputs by name (not our spectra shards).
const DESI_FILE_READERS: &[&str] = &["src/ingest/desi.rs", "src/ingest/discover.rs", "src/fuzz/mod.rs"];

/// Paths a module must never use even where its layer allows the module.
const FORBIDDEN: &[(&str, &str, &str)] =
    &[("report", "crate::ingest::run", "report reads ingest's report parts, not its internals")];

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

/// The code of a file, line by line (1-based numbers kept), without comments and without its
/// `#[cfg(test)]` items: the attribute's item is skipped to its closing brace, so code after a
/// test module is still checked.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the item: to the end of its first line without braces, or to its matching brace.
            let mut depth = 0i64;
            let mut opened = false;
            for (_, l) in lines.by_ref() {
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// The code of a file as one string (see [`code_lines`]).
fn code(path: &Path) -> String {
    code_lines(path).into_iter().map(|(_, l)| l).collect::<Vec<_>>().join("\n")
}

/// The first line of `path`'s code containing `text` (1-based), for messages.
fn line_of(path: &Path, text: &str) -> usize {
    code_lines(path).into_iter().find(|(_, l)| l.contains(text)).map_or(0, |(n, _)| n)
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
                    broken.push(format!("{rel}:{}: {module} uses {path}", line_of(file, &format!("{target}::"))));
                }
                for (m, prefix, files) in EXCEPTIONS {
                    if m == module && path.starts_with(prefix) && !files.contains(&rel.as_str()) {
                        broken.push(format!("{rel}: {path} (only {files:?} may)"));
                    }
                }
                for (m, prefix, why) in FORBIDDEN {
                    if m == module && path.starts_with(prefix) {
                        let line = line_of(file, prefix.trim_start_matches("crate::"));
                        broken.push(format!("{rel}:{line}: {path}: {why}"));
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
        // Any spelling of std::fs::rename: called, imported, imported under another name.
        ("renaming a temporary file into place", "fs::rename", "src/io/"),
        ("renaming a temporary file into place", "rename as ", "src/io/"),
        ("a metadata key", "\"starpipe.", "src/artifacts/"),
        ("a prediction shard name", "\"predictions-", "src/artifacts/"),
        ("an embedding shard name", "\"embeddings-", "src/artifacts/"),
        ("a spectra shard name", "\"spectra-", "src/artifacts/"),
        ("an ingest report part name", "\"report-", "src/artifacts/"),
        ("an ingest summary name", "\"ingest-summary-", "src/artifacts/"),
        // Files inside stage directories (artifacts::layout).
        ("a model directory file name", "\"model-card.json", "src/artifacts/"),
        ("a model directory file name", "\"model.safetensors", "src/artifacts/"),
        ("an adapter directory file name", "\"adapter-card.json", "src/artifacts/"),
        ("an adapter directory file name", "\"adapter.safetensors", "src/artifacts/"),
        ("an encoder directory file name", "\"encoder-card.json", "src/artifacts/"),
        ("an encoder directory file name", "\"encoder.safetensors", "src/artifacts/"),
        ("an encoder checkpoint name", "\"checkpoint.", "src/artifacts/"),
        ("an encoder checkpoint name", "\"checkpoint-", "src/artifacts/"),
        ("an evaluation file name", "\"evaluation.", "src/artifacts/"),
        ("an evaluation file name", "\"evaluation-predictions", "src/artifacts/"),
        ("a repeats file name", "\"repeats.", "src/artifacts/"),
    ];
    let root = src().parent().unwrap().to_path_buf();
    let mut broken = Vec::new();
    for file in rust_files(&src()) {
        let rel = file.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        for (n, line) in code_lines(&file) {
            for (what, text, owner) in rules {
                // `use std::fs::{self, rename}` imports it too.
                let grouped = *text == "fs::rename" && line.contains("fs::{") && line.contains("rename");
                // DESI's own per-exposure files are `spectra-*.fits`: ingest and the fuzz corpus
                // read them by that name, which is no shard of ours.
                let desi_file = *text == "\"spectra-" && DESI_FILE_READERS.contains(&rel.as_str());
                if (line.contains(text) || grouped) && !rel.starts_with(owner) && !desi_file {
                    broken.push(format!("{rel}:{n} spells {what} ({text}…): ask {owner}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "contracts spelt outside their owner:\n  {}", broken.join("\n  "));
}

/// The module that writes each table of `schemas/`.
const TABLE_WRITERS: &[(&str, &str)] = &[
    ("normalized_spectra", "ingest"),
    ("ingest_report", "ingest"),
    ("mock_lamost_labels", "mock"),
    ("mock_desi_labels", "mock"),
    ("crossmatch", "mock"),
    ("predictions", "model"),
    ("embeddings", "encoder"),
    ("evaluation_metrics", "validate"),
    ("evaluation_predictions", "validate"),
    ("repeats", "validate"),
    ("catalog", "catalog"),
    ("catalog_stars", "catalog"),
];

/// The tables a module reads that another module writes.
const TABLE_READERS: &[(&str, &[&str])] = &[
    ("shards", &["normalized_spectra", "embeddings"]),
    ("trust", &["normalized_spectra", "predictions"]),
    ("model", &["normalized_spectra", "embeddings"]),
    ("encoder", &["normalized_spectra", "crossmatch"]),
    ("validate", &["normalized_spectra", "predictions", "catalog"]),
    ("catalog", &["normalized_spectra", "predictions"]),
    ("report", &["normalized_spectra", "ingest_report", "evaluation_metrics", "evaluation_predictions", "catalog"]),
    ("fuzz", &["normalized_spectra", "ingest_report"]),
];

/// Words that equal a column name but name something else: (file, word, what it is).
const NOT_COLUMNS: &[(&str, &str, &str)] = &[("src/ingest/desi.rs", "healpix", "DESI's SPGRP value")];

/// Modules whose own tables are not checked: the mock writes survey FITS files whose column names
/// are those of its label tables (TARGETID, TEFF_TRUE…), so there a name is the file format's.
const OWN_TABLES_UNCHECKED: &[&str] = &["mock"];

/// The double-quoted identifiers of a line of code (`"teff"`, not `"a b"` or `"{x}"`), without
/// JSON object keys (`"survey": …` in a `json!`), which name metadata fields, not columns.
fn quoted_identifiers(line: &str) -> Vec<&str> {
    let parts: Vec<&str> = line.split('"').collect();
    (1..parts.len())
        .step_by(2)
        .filter(|&i| !parts.get(i + 1).is_some_and(|after| after.trim_start().starts_with(':')))
        .map(|i| parts[i])
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .filter(|s| !s.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

#[test]
fn every_module_names_columns_through_the_schema() {
    use starpipe::schema::{self, TableSchema};
    let tables: Vec<TableSchema> = vec![
        schema::normalized_spectra(),
        schema::ingest_report(),
        schema::mock_lamost_labels(),
        schema::mock_desi_labels(),
        schema::crossmatch(),
        schema::predictions(),
        schema::embeddings(),
        schema::evaluation_metrics(),
        schema::evaluation_predictions(),
        schema::repeats(),
        schema::catalog(),
        schema::catalog_stars(),
    ];
    let columns = |name: &str| -> BTreeSet<String> {
        let t = tables.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no schema {name}"));
        t.columns.iter().map(|c| c.name.clone()).collect()
    };
    for t in &tables {
        assert!(TABLE_WRITERS.iter().any(|(n, _)| *n == t.name), "{} has no writer in TABLE_WRITERS", t.name);
    }
    let modules = library_modules();
    let root = src().parent().unwrap().to_path_buf();
    let mut broken = Vec::new();
    // Per module, its own tables first (so a message names the table it writes), then those it reads.
    let mut checked: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (table, module) in TABLE_WRITERS {
        if !OWN_TABLES_UNCHECKED.contains(module) {
            checked.entry(module).or_default().push(table);
        }
    }
    for (module, read) in TABLE_READERS {
        checked.entry(module).or_default().extend(read.iter());
    }
    for (module, tables) in &checked {
        for file in &modules[*module] {
            let rel = file.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            for (n, line) in code_lines(file) {
                for word in quoted_identifiers(&line) {
                    if NOT_COLUMNS.iter().any(|(f, w, _)| *f == rel && *w == word) {
                        continue;
                    }
                    if let Some(table) = tables.iter().find(|t| columns(t).contains(word)) {
                        broken.push(format!(
                            "{rel}:{n} spells column \"{word}\" of {table}: schema::columns::{table}::{}",
                            word.to_ascii_uppercase()
                        ));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "column names spelt by hand:\n  {}", broken.join("\n  "));
}

/// The files of one module folder that a file uses (`super::x`, `crate::<module>::x`, and
/// `x::` of a sibling declared in the folder), as sibling stems; `mod.rs` is the folder's root
/// and takes no part (children use its error type, it re-exports theirs).
fn sibling_uses(folder: &Path, module: &str, file: &Path, siblings: &BTreeSet<String>) -> Vec<(String, usize)> {
    let own = file.file_stem().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for (n, line) in code_lines(file) {
        for prefix in ["super::".to_string(), format!("crate::{module}::")] {
            let mut rest = line.as_str();
            while let Some(i) = rest.find(&prefix) {
                let tail = &rest[i + prefix.len()..];
                let names: Vec<&str> = match tail.strip_prefix('{') {
                    Some(group) => group[..group.find('}').unwrap_or(group.len())]
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![tail.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("")],
                };
                for name in names {
                    if name != own && siblings.contains(name) {
                        out.push((name.to_string(), n));
                    }
                }
                rest = tail;
            }
        }
    }
    let _ = folder;
    out
}

#[test]
fn no_circle_between_the_files_of_a_module() {
    let mut circles = Vec::new();
    for (module, files) in library_modules() {
        let folder = src().join(&module);
        if !folder.is_dir() {
            continue;
        }
        // Files directly in the folder (a subfolder counts as one sibling, through its mod.rs).
        let stem = |f: &Path| -> String {
            let rel = f.strip_prefix(&folder).unwrap();
            rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
        };
        let siblings: BTreeSet<String> = files.iter().map(|f| stem(f)).filter(|s| s != "mod").collect();
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for f in &files {
            let from = stem(f);
            if from == "mod" || f.parent() != Some(folder.as_path()) {
                continue;
            }
            let rel = f.strip_prefix(src().parent().unwrap()).unwrap().to_string_lossy().into_owned();
            for (to, line) in sibling_uses(&folder, &module, f, &siblings) {
                edges.entry(from.clone()).or_default().entry(to).or_insert(format!("{rel}:{line}"));
            }
        }
        // A circle: a path from `to` back to `from` for some edge from → to.
        for (from, outs) in &edges {
            for (to, at) in outs {
                let mut seen = BTreeSet::new();
                let mut stack = vec![(to.clone(), vec![to.clone()])];
                while let Some((node, path)) = stack.pop() {
                    if &node == from {
                        circles.push(format!("{at}: {module}/{from} → {}", path.join(" → ")));
                        break;
                    }
                    if !seen.insert(node.clone()) {
                        continue;
                    }
                    for next in edges.get(&node).into_iter().flat_map(|m| m.keys()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    assert!(circles.is_empty(), "circles between the files of a module:\n  {}", circles.join("\n  "));
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
