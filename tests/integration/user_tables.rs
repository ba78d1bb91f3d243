//! Tables users bring, written by the tools they bring with those tools' defaults (pandas, DuckDB
//! and pyarrow write snappy, Polars zstd) and with every other Parquet codec: every command that
//! reads a user table reads them all.

use crate::catalog::heads;
use crate::common::*;
use crate::models::{fixture, ok, run};
use std::path::Path;
use std::process::Command;

/// Writes `source` as every tool and codec would into `out`; returns the files and the codec
/// each footer records.
fn written_by_every_tool(source: &Path, out: &Path) -> Vec<(std::path::PathBuf, String)> {
    let python = python("duckdb, pandas, polars, pyarrow");
    let result =
        Command::new(&python).arg(data("../python/write_user_tables.py")).arg(source).arg(out).output().unwrap();
    let text = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(result.status.success(), "{text}{}", String::from_utf8_lossy(&result.stderr));
    let files: Vec<_> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, codec)| (out.join(name), codec.to_string()))
        .collect();
    let codecs: std::collections::BTreeSet<&str> = files.iter().map(|(_, c)| c.as_str()).collect();
    for codec in ["SNAPPY", "GZIP", "LZ4", "BROTLI", "ZSTD", "UNCOMPRESSED"] {
        assert!(codecs.iter().any(|c| c.contains(codec)), "no {codec} file among {text}");
    }
    files
}

#[test]
fn label_and_crossmatch_tables_in_every_codec_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let csv = data("lamost_dr10_pylasp/lamost_dr10_pylasp_labels.csv");
    let spec = starpipe::labels::LabelSpec::new("obsid").with_columns("adam_teff,adam_logg,adam_feh").unwrap();
    let reference = starpipe::labels::read_labels(&csv, &spec).unwrap();
    assert_eq!(reference.rows.len(), 25);
    for (file, codec) in written_by_every_tool(&csv, dir.path()) {
        // Labels (train, finetune, evaluate, calibrate).
        let labels =
            starpipe::labels::read_labels(&file, &spec).unwrap_or_else(|e| panic!("{} ({codec}): {e}", file.display()));
        assert_eq!(labels.rows.len(), 25, "{}", file.display());
        for (k, v) in &reference.rows {
            assert_eq!(labels.get(*k).map(|l| l.values), Some(v.values), "{} obsid {k}", file.display());
        }
        // Crossmatch and star-id tables go through the same reader.
        let rows: usize = starpipe::labels::read_table(&file).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 25, "{}", file.display());
    }
}

/// `repeats` on a catalogue a user filtered and saved with pandas, with a star-id table DuckDB wrote.
#[test]
fn repeats_reads_a_catalogue_and_star_ids_saved_by_pandas_and_duckdb() {
    let f = fixture();
    let (zero, _) = heads();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog.parquet");
    ok(run(&["catalog"], &[("--spectra", &f.p("desi")), ("--predictions", zero), ("--out", &cat)]));
    let python = python("duckdb, pandas");
    let (resaved, ids) = (dir.path().join("pandas-catalog.parquet"), dir.path().join("star-ids.parquet"));
    let script = format!(
        "import duckdb, pandas as pd\n\
         t = pd.read_parquet('{cat}')\n\
         t[t.success].to_parquet('{resaved}')\n\
         duckdb.sql(\"COPY (SELECT source_id, source_id % 40 AS star FROM '{cat}') TO '{ids}' (FORMAT parquet)\")\n\
         import pyarrow.parquet as pq\n\
         print(pq.ParquetFile('{resaved}').metadata.row_group(0).column(0).compression, \
               pq.ParquetFile('{ids}').metadata.row_group(0).column(0).compression)\n",
        cat = cat.display(),
        resaved = resaved.display(),
        ids = ids.display()
    );
    let result = Command::new(&python).args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(
        result.status.success() && text.trim() == "SNAPPY SNAPPY",
        "{text}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let out = dir.path().join("repeats");
    let stdout = ok(run(
        &["repeats", "--star-id-column", "star"],
        &[("--catalog", &resaved), ("--star-ids", &ids), ("--out", &out)],
    ));
    assert!(out.join("repeats.parquet").exists(), "{stdout}");
}
