#!/usr/bin/env bash
# Quick-start demo: ingest the real LAMOST and DESI sample files shipped in tests/data/, then write
# small labelled mock LAMOST and DESI surveys, ingest those too, pre-train a model on the mock LAMOST
# labels, adapt it to mock DESI with LoRA, score it, predict, and write a catalogue. Everything lands
# in out/demo/.
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
"$bin" train --spectra "$out/mock-lamost" --labels "$out/mock-lamost-files/labels.parquet" --out "$out/model" --max-epochs 40
"$bin" finetune --strategy lora --n-train 40 --spectra "$out/mock-desi" --labels "$out/mock-desi-files/labels.parquet" \
  --model "$out/model" --out "$out/model-desi-lora"
"$bin" evaluate --spectra "$out/mock-desi" --labels "$out/mock-desi-files/labels.parquet" --model "$out/model" \
  --adapter "$out/model-desi-lora" --out "$out/evaluation" --bootstrap 200
"$bin" infer --spectra "$out/mock-desi" --model "$out/model" --adapter "$out/model-desi-lora" --out "$out/predictions-desi"
"$bin" infer --spectra "$out/lamost" --model "$out/model" --out "$out/predictions-lamost-real"
"$bin" catalog --spectra "$out/mock-desi" --predictions "$out/predictions-desi" --out "$out/catalog-desi.parquet"
echo
echo "Shards and reports are in $out/*/; mock labels in $out/mock-*-files/labels.parquet;"
echo "the model in $out/model, its scores in $out/evaluation/evaluation.md, predictions in $out/predictions-*/. Try:"
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT survey, count(*), median(snr_grid) FROM '$out/*/spectra-*.parquet' GROUP BY ALL\\\").show()\""
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT status, reason, count(*) FROM '$out/*/report-*.parquet' WHERE status <> 'written' GROUP BY ALL\\\").show()\""
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT spectrum_id, round(teff) AS teff, round(teff_err) AS teff_err, round(feh,2) AS feh, round(feh_err,2) AS feh_err FROM '$out/predictions-lamost-real/*.parquet'\\\").show()\""
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT round(teff/250)*250 AS teff, round(logg*2)/2 AS logg, count(*) FROM '$out/catalog-desi.parquet' WHERE is_default_head AND is_primary AND quality_flags < 256 GROUP BY ALL ORDER BY ALL\\\").show()\""
