#!/usr/bin/env bash
# Real-star validation: how a model pre-trained on mock LAMOST stars does on *real* spectra.
#
#   MILES (real observed spectra, literature labels) → rendered as LAMOST and as DESI files
#     (`starpipe mock --library`, REPEATS renders per star, own S/N, RV, calibration) → ingest;
#   the 25 real LAMOST DR10 spectra of tests/data/lamost_dr10_pylasp/ → ingest;
#   for each fold K of 5 (folds by star, stratified as the emulator fit splits them):
#     emulator refitted without fold K (scripts/emulator/fit_miles_emulator.py --fold K/5)
#     → mock LAMOST survey of N_MOCK stars from that emulator → ingest → train (--min-snr 20,
#     plus TRAIN_ARGS) → infer + catalogue on the MILES renders and the DR10 spectra;
#   → scripts/validate/summarize.py scores each fold's *held-out* MILES stars only (the emulator
#     never saw them), in both formats, inside and outside the training domain, and the DR10 stars.
#
# Usage: scripts/validate/real-stars.sh [OUT]        (default out/validate-real)
# Environment: FOLDS ("0 1 2 3 4"), N_MOCK (20000), REPEATS (2), LIBRARY_SNR (loguniform:20:80),
#   SEED (1), TRAIN_ARGS (extra `starpipe train` flags), MILES (../shared/data/miles_stars),
#   PYTHON (.venv-test/bin/python when present: numpy, safetensors, pyarrow).
# Re-running reuses finished steps (a step is redone when its output is missing).
# Do not tune on any other spectral library: MILES and the DR10 stars are the validation sets.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-out/validate-real}"
folds="${FOLDS:-0 1 2 3 4}"
n_mock="${N_MOCK:-20000}"
repeats="${REPEATS:-2}"
library_snr="${LIBRARY_SNR:-loguniform:20:80}"
seed="${SEED:-1}"
miles="${MILES:-../shared/data/miles_stars}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv-test/bin/python ]]; then PYTHON=.venv-test/bin/python; else PYTHON=python3; fi
fi
source scripts/steps.sh
mkdir -p "$out"

for survey in lamost desi; do
  step "MILES rendered as $survey ($repeats per star)" "$out/miles-$survey-files/labels.parquet" \
    "$bin" mock --survey "$survey" --library "$miles" --repeats "$repeats" --snr-dist "$library_snr" \
      --seed "$((seed + 500))" --rows-per-coadd 200 --out "$out/miles-$survey-files"
  step "ingest MILES as $survey" "$out/miles-$survey/ingest-summary-00000-of-00001.json" \
    "$bin" ingest --survey "$survey" --input "$out/miles-$survey-files" --out "$out/miles-$survey" --grid specclip
done
step "ingest the LAMOST DR10 stars" "$out/dr10/ingest-summary-00000-of-00001.json" \
  "$bin" ingest --survey lamost --input tests/data/lamost_dr10_pylasp --out "$out/dr10" --grid specclip

for k in $folds; do
  f="$out/fold-$k"
  step "fold $k: emulator without its stars" "$f/emulator/held_out_ids.txt" \
    "$PYTHON" scripts/emulator/fit_miles_emulator.py "$miles" "$f/emulator" --fold "$k/5"
  step "fold $k: mock LAMOST ($n_mock stars)" "$f/lamost-files/labels.parquet" \
    "$bin" mock --survey lamost --n "$n_mock" --seed "$((seed + k))" --snr-dist loguniform:10:150 \
      --emulator "$f/emulator/miles_emulator.safetensors" --out "$f/lamost-files"
  step "fold $k: ingest" "$f/lamost/ingest-summary-00000-of-00001.json" \
    "$bin" ingest --survey lamost --input "$f/lamost-files" --out "$f/lamost" --grid specclip
  step "fold $k: pre-train" "$f/model/model-card.json" \
    "$bin" train --spectra "$f/lamost" --labels "$f/lamost-files/labels.parquet" --min-snr 20 \
      --seed "$seed" "${train_args[@]}" --out "$f/model"
  for target in miles-lamost miles-desi dr10; do
    step "fold $k: infer + catalogue $target" "$f/catalog-$target.parquet" bash -c "
      '$bin' infer --spectra '$out/$target' --model '$f/model' --out '$f/pred-$target' &&
      '$bin' catalog --spectra '$out/$target' --predictions '$f/pred-$target' --format parquet \
        --out '$f/catalog-$target.parquet'"
  done
done

"$PYTHON" scripts/validate/summarize.py "$out" | tee "$out/validation.md"
