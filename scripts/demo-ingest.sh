#!/usr/bin/env bash
# Quick-start demo: ingest the real LAMOST and DESI sample files shipped in tests/data/ into
# normalised-spectra shards under out/demo/, and print each run's accounting summary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/starpipe"
out="${1:-out/demo}"
"$bin" ingest --survey lamost --input tests/data/real/lamost --out "$out/lamost"
"$bin" ingest --survey lamost --input tests/data/lamost_dr10_pylasp --out "$out/lamost-dr10"
"$bin" ingest --survey desi --input tests/data/real/desi --out "$out/desi"
echo
echo "Shards and reports are in $out/. Try, with DuckDB:"
echo "  duckdb -c \"SELECT spectrum_id, object_subclass, snr_grid, masked_fraction FROM '$out/*/spectra-*.parquet'\""
echo "  duckdb -c \"SELECT input_path, status, reason FROM '$out/*/report-*.parquet' WHERE status <> 'written'\""
