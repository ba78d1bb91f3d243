#!/usr/bin/env bash
# Real-star validation: how a model pre-trained on mock LAMOST stars does on *real* spectra.
#
#   MILES (real observed spectra, literature labels) → rendered as LAMOST and as DESI files
#     (`starpipe mock --library`, REPEATS renders per star, own S/N, RV, calibration) → ingest;
#   the 25 real LAMOST DR10 spectra of tests/data/lamost_dr10_pylasp/ → ingest;
#   for each fold K of 5 (folds by star, stratified as the emulator fit splits them):
#     emulator refitted without fold K (scripts/emulator/fit_miles_emulator.py --fold K/5)
#     → mock LAMOST survey of N_MOCK stars from that emulator → ingest
#     + (LIBRARY_TRAIN_REPEATS > 0) the MILES stars *outside* fold K and inside the mock's label
#       domain rendered that many times as LAMOST files → ingest → both label tables joined
#     → train (--min-snr 20, plus TRAIN_ARGS) → infer + catalogue on the MILES renders and the
#     DR10 spectra;
#   → error model: the fold's held-out stars split in two halves by star; `starpipe calibrate` fits
#     σ = √((k·σ_net)² + floor² + (snr_term/snr)²) on the LAMOST renders of one half, and the other half is scored
#     with it (both ways round), so no star is scored by errors fitted on itself;
#   → the same for DESI with DESI's own calibration: the zero-shot adapter calibrated on the other
#     half's DESI renders (`calibrate --adapter`);
#   → `starpipe repeats` (label-free checks) on half B's renders, catalogued with half A's error
#     model: repeat pairs in each format and LAMOST–DESI pairs of the same star;
#   → experiments/summarize-real-stars.py scores each fold's *held-out* MILES stars only (the emulator
#     never saw them), in both formats, inside and outside the training domain, and the DR10 stars.
#
# Usage: experiments/real-stars.sh [OUT]        (default out/validate-real)
# Environment: FOLDS ("0 1 2 3 4"), N_MOCK (20000), REPEATS (2), LIBRARY_SNR (loguniform:4:150: the
#   range the shipped pipelines calibrate on and a DESI release reaches),
#   LIBRARY_TRAIN_REPEATS (10; 0 = pre-train on emulated mocks only), TRAIN_SNR (loguniform:10:150:
#   the S/N of the training mock and library renders), TRAIN_MIN_SNR (20: `train --min-snr`),
#   SEED (1), TRAIN_ARGS (extra `starpipe train` flags; default `--augment`, the recommended recipe;
#   set it empty for plain training), DESI_INGEST_ARGS (`starpipe ingest` flags
#   for the DESI renders; default `--degrade-to-r`, i.e. LAMOST's R = 1800 as the model was trained
#   on; set it empty for DESI's native resolution), MILES (data/miles),
#   PYTHON (.venv-test/bin/python when present: numpy, safetensors, pyarrow),
#   PRUNE_RENDERS (0; 1 deletes a fold's mock and library FITS files once they are ingested, keeping
#   their label tables: 5 folds then need ~1 GB of disk instead of ~13 GB. To ingest a pruned fold
#   again, delete its `*-files` folder too, so the renders are drawn again, identically).
# Re-running reuses finished steps (a step is redone when its output is missing).
# Do not tune on any other spectral library: MILES and the DR10 stars are the validation sets.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/validate-real}"
folds="${FOLDS:-0 1 2 3 4}"
n_mock="${N_MOCK:-20000}"
repeats="${REPEATS:-2}"
library_train_repeats="${LIBRARY_TRAIN_REPEATS:-10}"
library_snr="${LIBRARY_SNR:-loguniform:4:150}"
train_snr="${TRAIN_SNR:-loguniform:10:150}"
train_min_snr="${TRAIN_MIN_SNR:-20}"
seed="${SEED:-1}"
prune_renders="${PRUNE_RENDERS:-0}"
[[ "$prune_renders" == [01] ]] || { echo "real-stars.sh: PRUNE_RENDERS is 0 or 1, not '$prune_renders'" >&2; exit 2; }
miles="${MILES:-data/miles}"
read -r -a train_args <<< "${TRAIN_ARGS---augment}"
read -r -a desi_ingest_args <<< "${DESI_INGEST_ARGS---degrade-to-r}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv-test/bin/python ]]; then PYTHON=.venv-test/bin/python; else PYTHON=python3; fi
fi
source scripts/steps.sh
mkdir -p "$out"

# prune_renders FILES SHARDS: with PRUNE_RENDERS=1, the rendered FITS files of FILES once SHARDS
# holds their ingest summary (the label tables stay: later steps read them).
prune_renders() {
  if [[ "$prune_renders" == 1 && -f "$2/ingest-summary-00000-of-00001.json" ]]; then
    find "$1" -maxdepth 1 -name '*.fits*' -delete
  fi
}

# only_stars LABELS IDS OUT: the rows of a label table whose library id IDS lists.
only_stars() { "$PYTHON" experiments/only_stars.py "$@"; }
# catalogue TARGET TAG INFER_ARGS…: predict the renders $out/TARGET, then catalogue them as
# $f/catalog-TARGET-TAG.parquet (TAG empty for the plain model).
catalogue() {
  local target="$1" tag="$2"; shift 2
  "$bin" infer --spectra "$out/$target" "$@" --out "$f/pred-$target$tag" &&
    "$bin" catalog --spectra "$out/$target" --predictions "$f/pred-$target$tag" --format parquet \
      --out "$f/catalog-$target$tag.parquet"
}

for survey in lamost desi; do
  step "MILES rendered as $survey ($repeats per star)" "$out/miles-$survey-files/labels.parquet" \
    "$bin" mock --survey "$survey" --library "$miles" --repeats "$repeats" --snr-dist "$library_snr" \
      --seed "$((seed + 500))" --rows-per-coadd 200 --out "$out/miles-$survey-files"
  extra=()
  [[ "$survey" == desi ]] && extra=("${desi_ingest_args[@]}")
  step "ingest MILES as $survey" "$out/miles-$survey/ingest-summary-00000-of-00001.json" \
    "$bin" ingest --survey "$survey" --input "$out/miles-$survey-files" --out "$out/miles-$survey" --grid specclip \
      "${extra[@]}"
done
step "ingest the LAMOST DR10 stars" "$out/dr10/ingest-summary-00000-of-00001.json" \
  "$bin" ingest --survey lamost --input tests/data/lamost_dr10_pylasp --out "$out/dr10" --grid specclip

for k in $folds; do
  f="$out/fold-$k"
  step "fold $k: emulator without its stars" "$f/emulator/held_out_ids.txt" \
    "$PYTHON" scripts/emulator/fit_miles_emulator.py "$miles" "$f/emulator" --fold "$k/5"
  step "fold $k: mock LAMOST ($n_mock stars)" "$f/lamost-files/labels.parquet" \
    "$bin" mock --survey lamost --n "$n_mock" --seed "$((seed + k))" --snr-dist "$train_snr" \
      --emulator "$f/emulator/miles_emulator.safetensors" --out "$f/lamost-files"
  step "fold $k: ingest" "$f/lamost/ingest-summary-00000-of-00001.json" \
    "$bin" ingest --survey lamost --input "$f/lamost-files" --out "$f/lamost" --grid specclip
  prune_renders "$f/lamost-files" "$f/lamost"
  train_spectra=("$f/lamost")
  train_labels="$f/lamost-files/labels.parquet"
  if (( library_train_repeats > 0 )); then
    # Only stars inside the mock's label domain: the training domain stays what the flags say it is.
    step "fold $k: library stars for training" "$f/train-library-ids.txt" "$PYTHON" -c "
import csv
fitted = {int(l) for l in open('$f/emulator/fitted_ids.txt') if l.strip() and not l.startswith('#')}
rows = [r for r in csv.DictReader(open('$miles/miles_v9.1_params.csv')) if r['teff'] and r['logg'] and r['feh']]
keep = sorted(int(r['miles_id']) for r in rows if int(r['miles_id']) in fitted
              and 3800 <= float(r['teff']) <= 8000 and 0.5 <= float(r['logg']) <= 5.2 and -2.5 <= float(r['feh']) <= 0.5)
open('$f/train-library-ids.txt', 'w').write(''.join(f'{i}\\n' for i in keep))"
    step "fold $k: MILES stars outside the fold as LAMOST ($library_train_repeats per star)" \
      "$f/library-files/labels.parquet" \
      "$bin" mock --survey lamost --library "$miles" --library-ids "$f/train-library-ids.txt" \
        --repeats "$library_train_repeats" --snr-dist "$train_snr" --seed "$((seed + 100 + k))" \
        --out "$f/library-files"
    step "fold $k: ingest the library renders" "$f/library/ingest-summary-00000-of-00001.json" \
      "$bin" ingest --survey lamost --input "$f/library-files" --out "$f/library" --grid specclip
    prune_renders "$f/library-files" "$f/library"
    step "fold $k: join the label tables" "$f/train-labels.parquet" "$PYTHON" -c "
import pyarrow as pa, pyarrow.parquet as pq
t = pa.concat_tables([pq.read_table('$f/lamost-files/labels.parquet'), pq.read_table('$f/library-files/labels.parquet')])
pq.write_table(t, '$f/train-labels.parquet', compression='zstd')"
    train_spectra+=("$f/library")
    train_labels="$f/train-labels.parquet"
  fi
  step "fold $k: pre-train" "$f/model/model-card.json" \
    "$bin" train --spectra "${train_spectra[@]}" --labels "$train_labels" --min-snr "$train_min_snr" \
      --seed "$seed" "${train_args[@]}" --out "$f/model"
  step "fold $k: held-out stars in two halves" "$f/half-B-ids.txt" "$PYTHON" -c "
ids = [int(l) for l in open('$f/emulator/held_out_ids.txt') if l.strip() and not l.startswith('#')]
open('$f/half-A-ids.txt', 'w').write(''.join(f'{i}\\n' for i in ids[0::2]))
open('$f/half-B-ids.txt', 'w').write(''.join(f'{i}\\n' for i in ids[1::2]))"
  for half in A B; do
    step "fold $k: labels of half $half" "$f/labels-half-$half.parquet" \
      only_stars "$out/miles-lamost-files/labels.parquet" "$f/half-$half-ids.txt" "$f/labels-half-$half.parquet"
    step "fold $k: error model on half $half" "$f/model-cal-$half/model-card.json" \
      "$bin" calibrate --model "$f/model" --spectra "$out/miles-lamost" --labels "$f/labels-half-$half.parquet" \
        --out "$f/model-cal-$half"
  done
  for target in miles-lamost miles-desi dr10; do
    for m in model model-cal-A model-cal-B; do
      tag="${m#model}"
      step "fold $k: infer + catalogue $target ($m)" "$f/catalog-$target$tag.parquet" \
        catalogue "$target" "$tag" --model "$f/$m"
    done
  done
  # DESI's own calibration: the zero-shot adapter calibrated on the other half's DESI renders.
  step "fold $k: zero-shot adapter" "$f/adapter-zeroshot/adapter-card.json" \
    "$bin" finetune --strategy zeroshot --n-train 0 --spectra "$out/miles-desi" \
      --labels "$out/miles-desi-files/labels.parquet" --label-key TARGETID --model "$f/model" --out "$f/adapter-zeroshot"
  for half in A B; do
    step "fold $k: DESI labels of half $half" "$f/labels-desi-half-$half.parquet" \
      only_stars "$out/miles-desi-files/labels.parquet" "$f/half-$half-ids.txt" "$f/labels-desi-half-$half.parquet"
    step "fold $k: DESI error model on half $half" "$f/adapter-cal-$half/adapter-card.json" \
      "$bin" calibrate --model "$f/model" --adapter "$f/adapter-zeroshot" --spectra "$out/miles-desi" \
        --labels "$f/labels-desi-half-$half.parquet" --label-key TARGETID --out "$f/adapter-cal-$half"
    step "fold $k: infer + catalogue miles-desi (adapter-cal-$half)" \
      "$f/catalog-miles-desi-adapter-cal-$half.parquet" \
      catalogue miles-desi "-adapter-cal-$half" --model "$f/model" --adapter "$f/adapter-cal-$half"
  done
  for survey in lamost desi; do
    step "fold $k: $survey star ids of half B" "$f/ids-$survey-B.parquet" \
      only_stars "$out/miles-$survey-files/labels.parquet" "$f/half-B-ids.txt" "$f/ids-$survey-B.parquet"
  done
  step "fold $k: label-free checks on half B" "$f/repeats-B/repeats.parquet" \
    "$bin" repeats --catalog "$f/catalog-miles-lamost-cal-A.parquet" "$f/catalog-miles-desi-cal-A.parquet" \
      --star-ids "$f/ids-lamost-B.parquet" "$f/ids-desi-B.parquet" --star-id-column library_id --out "$f/repeats-B"
done

"$PYTHON" experiments/summarize-real-stars.py "$out" | tee "$out/validation.md"
