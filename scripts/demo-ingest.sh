#!/usr/bin/env bash
# Quick-start demo: ingest the real LAMOST and DESI sample files shipped in tests/data/, then write
# small labelled mock LAMOST and DESI surveys and ingest those too. Everything lands in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/starpipe"
out="${1:-out/demo}"
"$bin" ingest --survey lamost --input tests/data/real/lamost --out "$out/lamost"
"$bin" ingest --survey lamost --input tests/data/lamost_dr10_pylasp --out "$out/lamost-dr10"
"$bin" ingest --survey desi --input tests/data/real/desi --out "$out/desi"
"$bin" mock --survey lamost --n 200 --out "$out/mock-lamost-files" --seed 1 --corrupt-frac 0.05
"$bin" ingest --survey lamost --input "$out/mock-lamost-files" --out "$out/mock-lamost"
"$bin" mock --survey desi --n 100 --rows-per-coadd 50 --out "$out/mock-desi-files" --seed 1
"$bin" ingest --survey desi --input "$out/mock-desi-files" --out "$out/mock-desi"
echo
echo "Shards and reports are in $out/*/; mock labels in $out/mock-*-files/labels.parquet. Try:"
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT survey, count(*), median(snr_grid) FROM '$out/*/spectra-*.parquet' GROUP BY ALL\\\").show()\""
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT status, reason, count(*) FROM '$out/*/report-*.parquet' WHERE status <> 'written' GROUP BY ALL\\\").show()\""
