//! Helpers shared by the integration tests.

use polars::prelude::*;
use starpipe::artifacts::ShardKind;
use starpipe::artifacts::discover::shard_paths;
use starpipe::grid::{GridPreset, LogGrid};
use starpipe::ingest::{IngestOptions, IngestSummary, Survey, run_ingest};
use starpipe::preprocess::PreprocessConfig;
pub use starpipe::trust::resolution::Resolution;
use starpipe::trust::resolution::training_resolutions;
use std::path::{Path, PathBuf};

/// A path under tests/data (copies of the real survey files; see their PROVENANCE.md).
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// The Python the cross-checks run with (`$PYTHON`, set by scripts/test-env.sh, else `python3`),
/// after checking that it imports `modules`: a missing package fails here, saying how to get it.
pub fn python(modules: &str) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python).args(["-c", &format!("import {modules}")]).output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs Python with {modules} ({python} lacks them): run the tests with scripts/test-env.sh (README), which \
         installs scripts/requirements-test.txt into .venv-test/, or set PYTHON to a Python that has them\n{}",
        probe.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_else(|e| e.to_string())
    );
    python
}

pub fn options(survey: Survey, input: &Path, out: &Path) -> IngestOptions {
    IngestOptions::new(survey, input, out, PreprocessConfig::new(LogGrid::preset(GridPreset::Lamost)))
        .with_progress(false)
        .with_threads(Some(2))
}

pub fn ingest(survey: Survey, input: &Path, out: &Path) -> IngestSummary {
    run_ingest(&options(survey, input, out)).expect("ingest run")
}

pub fn read_parts(out: &Path, prefix: &str) -> DataFrame {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".parquet")
        })
        .collect();
    paths.sort();
    let mut frames = paths.iter().map(|p| ParquetReader::new(std::fs::File::open(p).unwrap()).finish().unwrap());
    let mut df = frames.next().expect("at least one part");
    for f in frames {
        df.vstack_mut(&f).unwrap();
    }
    df
}

/// The resolutions a model trained on an output directory's spectra shards records.
pub fn resolutions(out: &Path) -> Vec<Resolution> {
    let shards = shard_paths(&[out.to_path_buf()], ShardKind::Spectra).unwrap();
    training_resolutions(&shards).unwrap()
}

/// All spectra shards of an output directory, read with polars.
pub fn read_spectra(out: &Path) -> DataFrame {
    read_parts(out, "spectra-")
}

/// The report row of one (input, row) as (status, reason).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub level: String,
    pub input_path: String,
    pub source_row: Option<i32>,
    pub source_id: Option<i64>,
    pub status: String,
    pub reason: String,
}

pub fn read_report(out: &Path) -> Vec<Report> {
    let df = read_parts(out, "report-");
    let s = |c: &str| -> Vec<String> {
        df.column(c).unwrap().str().unwrap().iter().map(|v| v.unwrap_or("").to_string()).collect()
    };
    let (level, path, status, reason) = (s("level"), s("input_path"), s("status"), s("reason"));
    let rows: Vec<Option<i32>> = df.column("source_row").unwrap().i32().unwrap().iter().collect();
    let ids: Vec<Option<i64>> = df.column("source_id").unwrap().i64().unwrap().iter().collect();
    (0..df.height())
        .map(|i| Report {
            level: level[i].clone(),
            input_path: path[i].clone(),
            source_row: rows[i],
            source_id: ids[i],
            status: status[i].clone(),
            reason: reason[i].clone(),
        })
        .collect()
}

/// File-level report rows whose path ends with `name`.
pub fn file_row<'a>(report: &'a [Report], name: &str) -> &'a Report {
    report
        .iter()
        .find(|r| r.level == "file" && r.input_path.ends_with(name))
        .unwrap_or_else(|| panic!("no file row for {name}"))
}

pub fn strings(df: &DataFrame, col: &str) -> Vec<String> {
    df.column(col).unwrap().str().unwrap().iter().map(|v| v.unwrap_or("").to_string()).collect()
}

/// Deterministic normal deviates (xorshift64* + Box–Muller) so the tests need no RNG crate.
pub struct Gaussian(u64);

impl Gaussian {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn sample(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Cells of one Markdown table row: split on `|` not escaped by `\`, outer pipes dropped.
fn markdown_cells(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut escaped) = (Vec::new(), String::new(), false);
    for c in line.trim().trim_start_matches('|').chars() {
        match c {
            '|' if !escaped => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
        escaped = c == '\\' && !escaped;
    }
    if !cell.trim().is_empty() {
        cells.push(cell);
    }
    cells
}

/// Checks every table of a Markdown document as a GitHub-flavoured Markdown renderer reads it: a
/// header row, a delimiter row of as many cells (each `-`s with optional `:`), and body rows of
/// that width. Returns the number of tables.
pub fn assert_markdown_tables(text: &str, what: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let (mut tables, mut i) = (0, 0);
    while i < lines.len() {
        if !lines[i].trim_start().starts_with('|') {
            i += 1;
            continue;
        }
        let header = markdown_cells(lines[i]);
        let delimiter = lines.get(i + 1).map(|l| markdown_cells(l)).unwrap_or_default();
        assert_eq!(header.len(), delimiter.len(), "{what}: header cells vs delimiter cells at line {}", i + 1);
        assert!(
            delimiter.iter().all(|d| {
                let d = d.trim().trim_start_matches(':').trim_end_matches(':');
                !d.is_empty() && d.chars().all(|c| c == '-')
            }),
            "{what}: line {} is not a delimiter row",
            i + 2
        );
        i += 2;
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            assert_eq!(markdown_cells(lines[i]).len(), header.len(), "{what}: cells at line {}", i + 1);
            i += 1;
        }
        tables += 1;
    }
    tables
}

#[test]
fn the_markdown_checker_counts_escaped_pipes_as_text() {
    assert_eq!(assert_markdown_tables("| a | \\|z\\| < 1 |\n|---|---:|\n| 1 | 2 |\n", "ok"), 1);
    let broken = std::panic::catch_unwind(|| assert_markdown_tables("| a | |z| < 1 |\n|---|---|\n", "broken"));
    assert!(broken.is_err(), "an unescaped pipe makes extra header cells");
}
