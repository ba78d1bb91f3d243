#!/usr/bin/env bash
# Real-star validation of the embedding head and the hybrids (issue 33): the arm of
# experiments/real-stars.sh that scores transformer embeddings beside the pixel head, on the same
# folds, held-out MILES stars, renders and error-model halves.
#
# Run experiments/real-stars.sh OUT first (same FOLDS, SEED, TRAIN_SNR, DESI_INGEST_ARGS); then,
# for each fold K, with nothing of fold K's stars anywhere in the encoder's or the head's training:
#   mock DESI survey from fold K's emulator (refitted without the fold), observing a fraction of the
#     fold's LAMOST mock stars (`mock --overlap`: the crossmatch pairs) → ingest (as the scored DESI
#     renders are: DESI_INGEST_ARGS);
#   → the recommended encoder recipe (`medium` preset, masked tokens + the contrastive term on the
#     pairs, PAIR_BATCH_SIZE pairs per contrastive batch so every pair is seen every epoch) on the
#     fold's LAMOST and DESI mocks, for ENCODER_EPOCHS epochs;
#   → embeddings of the fold's training spectra (the LAMOST mock and the MILES stars outside the
#     fold), of the held-out MILES renders (both formats) and of the 25 DR10 spectra;
#   → the embedding MLP trained as the pixel one was (same label tables, --min-snr);
#   → both heads calibrated on one half of the fold's held-out stars and scored on the other half
#     (both ways round), in LAMOST's format and in DESI's with DESI's own calibration (the bare
#     model calibrated on the DESI renders, as desi-catalog.toml calibrates its embedding head);
#   → `starpipe evaluate` scores pixels, embeddings and the three hybrids on the same stars
#     (evaluation-predictions.parquet per half and format), and each head is catalogued for its
#     flags;
#   → experiments/summarize-real-stars-embeddings.py pools halves and folds, per [Fe/H] regime.
#
# Usage: experiments/real-stars-embeddings.sh [OUT]   (default out/validate-real)
# Environment: FOLDS ("0"), N_DESI (6000), OVERLAP (0.6: ~3,600 pairs), ENCODER_SPECTRA (4000),
#   ENCODER_EPOCHS (4; the recommended recipe is 8: 2 h 20 min per fold on 2 cores),
#   PAIR_BATCH_SIZE (168), SEED (1), TRAIN_SNR (loguniform:10:150), TRAIN_MIN_SNR (20),
#   DESI_INGEST_ARGS (--degrade-to-r), PYTHON, PRUNE_RENDERS (0; 1 deletes the DESI mock's FITS
#   files once ingested).
# Re-running reuses finished steps. Never tune on any other spectral library.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/validate-real}"
folds="${FOLDS:-0}"
n_desi="${N_DESI:-6000}"
overlap="${OVERLAP:-0.6}"
encoder_spectra="${ENCODER_SPECTRA:-4000}"
encoder_epochs="${ENCODER_EPOCHS:-4}"
pair_batch="${PAIR_BATCH_SIZE:-168}"
seed="${SEED:-1}"
train_snr="${TRAIN_SNR:-loguniform:10:150}"
train_min_snr="${TRAIN_MIN_SNR:-20}"
prune_renders="${PRUNE_RENDERS:-0}"
read -r -a desi_ingest_args <<< "${DESI_INGEST_ARGS---degrade-to-r}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv-test/bin/python ]]; then PYTHON=.venv-test/bin/python; else PYTHON=python3; fi
fi
source scripts/steps.sh
[[ -f "$out/miles-desi/ingest-summary-00000-of-00001.json" ]] ||
  { echo "real-stars-embeddings.sh: run experiments/real-stars.sh $out first" >&2; exit 2; }

# embed SHARDS OUT: embeddings of SHARDS with the fold's encoder.
embed() {
  "$bin" embed --spectra "$1" --encoder "$f/encoder" --out "$2" && touch "$2/done"
}
# catalogue_head SPECTRA PRED_INPUT MODEL NAME: the head's predictions and catalogue of SPECTRA.
catalogue_head() {
  "$bin" infer --spectra "$2" --model "$3" --out "$f/pred-$4" &&
    "$bin" catalog --spectra "$1" --predictions "$f/pred-$4" --format parquet --out "$f/catalog-$4.parquet"
}

for k in $folds; do
  f="$out/fold-$k"
  [[ -f "$f/model/model-card.json" && -f "$f/half-B-ids.txt" ]] ||
    { echo "real-stars-embeddings.sh: fold $k of experiments/real-stars.sh is not finished in $out" >&2; exit 2; }
  # The pixel head in DESI's format with DESI's own calibration, as the bare model (zero-shot),
  # so that evaluate pairs it with the embedding head calibrated the same way.
  for half in A B; do
    step "fold $k: pixel head calibrated on half $half's DESI renders" "$f/model-desi-cal-$half/model-card.json" \
      "$bin" calibrate --model "$f/model" --spectra "$out/miles-desi" --labels "$f/labels-desi-half-$half.parquet" \
        --label-key TARGETID --out "$f/model-desi-cal-$half"
  done

  step "fold $k: mock DESI (~$n_desi stars, $overlap of them the LAMOST mock's)" "$f/desi-files/crossmatch.parquet" \
    "$bin" mock --survey desi --n "$n_desi" --seed "$((seed + 1000 + k))" --snr-dist "$train_snr" \
      --emulator "$f/emulator/miles_emulator.safetensors" --overlap "$f/lamost-files" --overlap-fraction "$overlap" \
      --out "$f/desi-files"
  step "fold $k: ingest the DESI mock" "$f/desi/ingest-summary-00000-of-00001.json" \
    "$bin" ingest --survey desi --input "$f/desi-files" --out "$f/desi" --grid specclip "${desi_ingest_args[@]}"
  if [[ "$prune_renders" == 1 ]]; then find "$f/desi-files" -maxdepth 1 -name '*.fits*' -delete; fi
  step "fold $k: encoder (medium, masked + contrastive, $encoder_epochs epochs)" "$f/encoder/encoder-card.json" \
    "$bin" train-encoder --spectra "$f/lamost" "$f/desi" --max-spectra "$encoder_spectra" \
      --max-epochs "$encoder_epochs" --patience 100 --seed "$seed" --preset medium \
      --pairs "$f/desi-files/crossmatch.parquet" --contrastive-weight 1 --pair-batch-size "$pair_batch" \
      --out "$f/encoder"

  train_embeddings=("$f/emb-lamost")
  train_labels="$f/lamost-files/labels.parquet"
  step "fold $k: embed the LAMOST mock" "$f/emb-lamost/done" embed "$f/lamost" "$f/emb-lamost"
  if [[ -f "$f/train-labels.parquet" ]]; then
    step "fold $k: embed the library stars outside the fold" "$f/emb-library/done" embed "$f/library" "$f/emb-library"
    train_embeddings+=("$f/emb-library")
    train_labels="$f/train-labels.parquet"
  fi
  for target in miles-lamost miles-desi dr10; do
    step "fold $k: embed $target" "$f/emb-$target/done" embed "$out/$target" "$f/emb-$target"
  done
  step "fold $k: embedding head" "$f/emb-model/model-card.json" \
    "$bin" train --spectra "${train_embeddings[@]}" --labels "$train_labels" --min-snr "$train_min_snr" \
      --seed "$seed" --out "$f/emb-model"

  for half in A B; do
    step "fold $k: embedding head calibrated on half $half (LAMOST)" "$f/emb-model-cal-$half/model-card.json" \
      "$bin" calibrate --model "$f/emb-model" --spectra "$f/emb-miles-lamost" --labels "$f/labels-half-$half.parquet" \
        --out "$f/emb-model-cal-$half"
    step "fold $k: embedding head calibrated on half $half (DESI)" "$f/emb-model-desi-cal-$half/model-card.json" \
      "$bin" calibrate --model "$f/emb-model" --spectra "$f/emb-miles-desi" --labels "$f/labels-desi-half-$half.parquet" \
        --label-key TARGETID --out "$f/emb-model-desi-cal-$half"
  done
  # Each half scored with the error models of the other.
  for half in A B; do
    other=$([[ "$half" == A ]] && echo B || echo A)
    step "fold $k: evaluate half $other, LAMOST (calibrated on $half)" "$f/eval-emb-lamost-$other/evaluation.parquet" \
      "$bin" evaluate --spectra "$out/miles-lamost" --labels "$f/labels-half-$other.parquet" --label-key obsid \
        --model "$f/model-cal-$half" --embedding-model "$f/emb-model-cal-$half" --embeddings "$f/emb-miles-lamost" \
        --test-fraction 1 --out "$f/eval-emb-lamost-$other"
    step "fold $k: evaluate half $other, DESI (calibrated on $half)" "$f/eval-emb-desi-$other/evaluation.parquet" \
      "$bin" evaluate --spectra "$out/miles-desi" --labels "$f/labels-desi-half-$other.parquet" --label-key TARGETID \
        --model "$f/model-desi-cal-$half" --embedding-model "$f/emb-model-desi-cal-$half" --embeddings "$f/emb-miles-desi" \
        --test-fraction 1 --out "$f/eval-emb-desi-$other"
    step "fold $k: catalogue the embedding head, LAMOST (calibrated on $half)" "$f/catalog-emb-miles-lamost-cal-$half.parquet" \
      catalogue_head "$out/miles-lamost" "$f/emb-miles-lamost" "$f/emb-model-cal-$half" "emb-miles-lamost-cal-$half"
    step "fold $k: catalogue the pixel head, DESI (calibrated on $half)" "$f/catalog-miles-desi-desi-cal-$half.parquet" \
      catalogue_head "$out/miles-desi" "$out/miles-desi" "$f/model-desi-cal-$half" "miles-desi-desi-cal-$half"
    step "fold $k: catalogue the embedding head, DESI (calibrated on $half)" "$f/catalog-emb-miles-desi-cal-$half.parquet" \
      catalogue_head "$out/miles-desi" "$f/emb-miles-desi" "$f/emb-model-desi-cal-$half" "emb-miles-desi-cal-$half"
  done
  step "fold $k: catalogue the embedding head, DR10 (calibrated on A)" "$f/catalog-emb-dr10-cal-A.parquet" \
    catalogue_head "$out/dr10" "$f/emb-dr10" "$f/emb-model-cal-A" "emb-dr10-cal-A"
done

"$PYTHON" experiments/summarize-real-stars-embeddings.py "$out" | tee "$out/validation-embeddings.md"
