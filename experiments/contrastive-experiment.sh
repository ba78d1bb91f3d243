#!/usr/bin/env bash
# Does the cross-survey contrastive objective make embeddings transfer? On one pair of mocks that
# share stars (the DESI mock observes a fraction of the LAMOST mock's stars, `mock --overlap`):
#   pixels:  pre-train an MLP on LAMOST spectra → zero-shot on DESI;
#   masked:  an encoder pre-trained by masked tokens on both surveys → embeddings → the same MLP;
#   clip:    the same encoder, data, seed and epochs, plus the contrastive term on the crossmatch
#            pairs (`train-encoder --pairs`) → embeddings → the same MLP;
# then `evaluate` (zero-shot, held-out DESI test stars, bootstrap intervals) on the DESI stars the
# LAMOST mock does not have, so no scored star had its labels in pre-training.
#
# Usage: experiments/contrastive-experiment.sh [OUT]   (default out/contrastive-experiment)
# Sizes via the environment: N_LAMOST (20000), N_DESI (6000), OVERLAP (0.3), SEED (1),
# ENCODER_SPECTRA (4000), ENCODER_EPOCHS (4), CONTRASTIVE_WEIGHT (1).
# ENCODERS (default "masked clip") lists the encoders to compare, any of:
#   masked        masked tokens only;
#   clip          masked + contrastive, weight CONTRASTIVE_WEIGHT;
#   clip-w3       masked + contrastive, weight 3;
#   clip-only     contrastive only (--masked-weight 0);
#   clip-medium   as clip, with the `medium` preset (3 layers, width 96);
#   clip-medium-wide  as clip-medium, with PAIR_BATCH_SIZE (168) pairs per contrastive batch: one
#                 batch goes with each masked batch, so with ~10,000 training pairs an epoch sees
#                 every pair (clip-medium: 64 per step, ~3,800 per epoch), each with more negatives;
#   clip-medium-wide-long  as clip-medium-wide for LONG_CONTRASTIVE_EPOCHS (8) epochs (its
#                 validation loss was still falling at 4); ~2 h on 2 cores, resumable: a killed run
#                 continues from its last epoch's checkpoint when the script runs again;
#   masked-long   masked tokens only for LONG_MASKED_EPOCHS (12) epochs: about the work of the
#                 contrastive run, which embeds a batch of pairs twice per step (compute control).
# Each encoder's head is also scored on a validation set: the DESI stars the LAMOST mock does not
# have and that are not test stars (the zero-shot heads train on no DESI star, so these are unused).
# The summary chooses among the contrastive encoders by that validation score alone and reports the
# chosen one's test numbers. Re-running reuses finished steps. Summary: OUT/summary.md
# (experiments/summarize-contrastive.py).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/contrastive-experiment}"
n_lamost="${N_LAMOST:-20000}"
n_desi="${N_DESI:-6000}"
overlap="${OVERLAP:-0.3}"
seed="${SEED:-1}"
encoder_spectra="${ENCODER_SPECTRA:-4000}"
encoder_epochs="${ENCODER_EPOCHS:-4}"
weight="${CONTRASTIVE_WEIGHT:-1}"
py="${PYTHON:-python3}"
source scripts/steps.sh
mkdir -p "$out"

step "mock LAMOST ($n_lamost stars)" "$out/lamost-files/labels.parquet" \
  "$bin" mock --survey lamost --n "$n_lamost" --seed "$seed" --snr-dist loguniform:10:150 --out "$out/lamost-files"
step "mock DESI (~$n_desi stars, $overlap of them LAMOST's)" "$out/desi-files/crossmatch.parquet" \
  "$bin" mock --survey desi --n "$n_desi" --seed "$((seed + 1000))" --snr-dist loguniform:10:150 \
    --overlap "$out/lamost-files" --overlap-fraction "$overlap" --out "$out/desi-files"
step "ingest LAMOST" "$out/lamost/ingest-summary-00000-of-00001.json" \
  "$bin" ingest --survey lamost --input "$out/lamost-files" --out "$out/lamost" --grid specclip
step "ingest DESI" "$out/desi/ingest-summary-00000-of-00001.json" \
  "$bin" ingest --survey desi --input "$out/desi-files" --out "$out/desi" --grid specclip
step "DESI labels without the shared stars" "$out/desi-labels-unshared.parquet" "$py" -c "
import pyarrow.parquet as pq, pyarrow.compute as pc
t = pq.read_table('$out/desi-files/labels.parquet')
shared = pq.read_table('$out/desi-files/crossmatch.parquet').column('targetid')
pq.write_table(t.filter(pc.invert(pc.is_in(t.column('TARGETID'), value_set=shared))), '$out/desi-labels-unshared.parquet', compression='zstd')
"
step "pre-train on LAMOST pixels" "$out/model/model-card.json" \
  "$bin" train --spectra "$out/lamost" --labels "$out/lamost-files/labels.parquet" --min-snr 20 \
    --seed "$seed" --out "$out/model"
step "pixels: zero-shot" "$out/adapters/zeroshot/adapter-card.json" \
  "$bin" finetune --strategy zeroshot --n-train 0 --spectra "$out/desi" --labels "$out/desi-labels-unshared.parquet" \
    --model "$out/model" --out "$out/adapters/zeroshot"

# Validation labels: unshared DESI stars outside the test split (the test stars are those the first
# evaluation scored; every evaluation uses the same split).
validation_labels() {
  step "DESI validation labels (unshared, not test)" "$out/desi-labels-validation.parquet" "$py" -c "
import pyarrow.parquet as pq, pyarrow.compute as pc
t = pq.read_table('$out/desi-labels-unshared.parquet')
test = pq.read_table('$1/evaluation-predictions.parquet', columns=['source_id']).column('source_id')
pq.write_table(t.filter(pc.invert(pc.is_in(t.column('TARGETID'), value_set=pc.unique(test)))), '$out/desi-labels-validation.parquet', compression='zstd')
"
  step "pixels: validation" "$out/validation-pixels/evaluation.parquet" \
    "$bin" evaluate --spectra "$out/desi" --labels "$out/desi-labels-validation.parquet" --model "$out/model" \
      --test-fraction 1 --out "$out/validation-pixels"
}

pairs=(--pairs "$out/desi-files/crossmatch.parquet")
read -r -a encoders <<< "${ENCODERS:-masked clip}"
[[ -n "${LONG_MASKED_EPOCHS:-}" && " ${encoders[*]} " != *" masked-long "* ]] && encoders+=(masked-long)
for kind in "${encoders[@]}"; do
  epochs="$encoder_epochs"
  case "$kind" in
    masked) flags=() ;;
    clip) flags=("${pairs[@]}" --contrastive-weight "$weight") ;;
    clip-w3) flags=("${pairs[@]}" --contrastive-weight 3) ;;
    clip-only) flags=("${pairs[@]}" --masked-weight 0) ;;
    clip-medium) flags=("${pairs[@]}" --contrastive-weight "$weight" --preset medium) ;;
    clip-medium-wide) flags=("${pairs[@]}" --contrastive-weight "$weight" --preset medium \
      --pair-batch-size "${PAIR_BATCH_SIZE:-168}") ;;
    clip-medium-wide-long) flags=("${pairs[@]}" --contrastive-weight "$weight" --preset medium \
      --pair-batch-size "${PAIR_BATCH_SIZE:-168}"); epochs="${LONG_CONTRASTIVE_EPOCHS:-8}" ;;
    masked-long) flags=(); epochs="${LONG_MASKED_EPOCHS:-12}" ;;
    *) echo "unknown encoder '$kind' in ENCODERS" >&2; exit 2 ;;
  esac
  step "encoder ($kind)" "$out/encoder-$kind/encoder-card.json" \
    "$bin" train-encoder --spectra "$out/lamost" "$out/desi" --max-spectra "$encoder_spectra" \
      --max-epochs "$epochs" --patience 100 --seed "$seed" "${flags[@]}" --out "$out/encoder-$kind"
  for s in lamost desi; do
    step "embed $s ($kind)" "$out/emb-$kind-$s/done" bash -c \
      "'$bin' embed --spectra '$out/$s' --encoder '$out/encoder-$kind' --out '$out/emb-$kind-$s' && touch '$out/emb-$kind-$s/done'"
  done
  step "pre-train on LAMOST embeddings ($kind)" "$out/model-$kind/model-card.json" \
    "$bin" train --spectra "$out/emb-$kind-lamost" --labels "$out/lamost-files/labels.parquet" --min-snr 20 \
      --seed "$seed" --out "$out/model-$kind"
  step "embeddings ($kind): zero-shot" "$out/adapters-$kind/zeroshot/adapter-card.json" \
    "$bin" finetune --strategy zeroshot --n-train 0 --spectra "$out/emb-$kind-desi" \
      --labels "$out/desi-labels-unshared.parquet" --model "$out/model-$kind" --out "$out/adapters-$kind/zeroshot"
  step "evaluate pixels and embeddings ($kind)" "$out/evaluation-$kind/evaluation.parquet" \
    "$bin" evaluate --spectra "$out/desi" --labels "$out/desi-labels-unshared.parquet" --model "$out/model" \
      --adapter "$out/adapters/zeroshot" --embedding-model "$out/model-$kind" --embeddings "$out/emb-$kind-desi" \
      --embedding-adapter "$out/adapters-$kind/zeroshot" --out "$out/evaluation-$kind"
  validation_labels "$out/evaluation-$kind"
  step "embeddings ($kind): validation" "$out/validation-$kind/evaluation.parquet" \
    "$bin" evaluate --spectra "$out/emb-$kind-desi" --labels "$out/desi-labels-validation.parquet" \
      --model "$out/model-$kind" --test-fraction 1 --out "$out/validation-$kind"
done
"$py" experiments/summarize-contrastive.py "$out" | tee "$out/summary.md"
