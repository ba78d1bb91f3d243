#!/usr/bin/env bash
# The experiment of arXiv 2602.15021 on mock surveys, end to end:
#   mock LAMOST survey → ingest → pre-train an MLP on LAMOST labels
#   mock DESI survey   → ingest → zero-shot, full fine-tuning, LoRA and residual head for several
#                                 numbers of DESI labels
#   both surveys → pre-train a transformer encoder (masked tokens) → embeddings → the same MLP
#                  experiment on embeddings
#   → one evaluation table on held-out DESI stars: pixels, embeddings and their hybrids.
# Both mocks come from one MILES emulator, so every LAMOST/DESI difference is instrumental.
#
# Usage: experiments/transfer-experiment.sh [OUT]   (default out/transfer-experiment)
# Sizes via the environment: N_LAMOST (20000), N_DESI (6000 good stars), N_TRAIN ("50 200 1000 3000"),
# SEED (1), ENCODER_SPECTRA (6000), ENCODER_EPOCHS (6). Re-running reuses finished steps (a step is
# redone when its output is missing).
# `starpipe run` (pipelines/demo.toml) runs the same method at demo size; this script sweeps --n-train.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/transfer-experiment}"
n_lamost="${N_LAMOST:-20000}"
n_desi="${N_DESI:-6000}"
n_train="${N_TRAIN:-50 200 1000 3000}"
seed="${SEED:-1}"
encoder_spectra="${ENCODER_SPECTRA:-6000}"
encoder_epochs="${ENCODER_EPOCHS:-6}"
source scripts/steps.sh
mkdir -p "$out"

step "mock LAMOST ($n_lamost stars)" "$out/lamost-files/labels.parquet" \
  "$bin" mock --survey lamost --n "$n_lamost" --seed "$seed" --snr-dist loguniform:10:150 --out "$out/lamost-files"
step "mock DESI (~$n_desi stars)" "$out/desi-files/labels.parquet" \
  "$bin" mock --survey desi --n "$n_desi" --seed "$((seed + 1000))" --snr-dist loguniform:10:150 --out "$out/desi-files"
# SpecCLIP's 3999–5599 Å window, rest frame, DESI at its own resolution (the default).
step "ingest LAMOST" "$out/lamost/ingest-summary-00000-of-00001.json" \
  "$bin" ingest --survey lamost --input "$out/lamost-files" --out "$out/lamost" --grid specclip
step "ingest DESI" "$out/desi/ingest-summary-00000-of-00001.json" \
  "$bin" ingest --survey desi --input "$out/desi-files" --out "$out/desi" --grid specclip
step "pre-train on LAMOST" "$out/model/model-card.json" \
  "$bin" train --spectra "$out/lamost" --labels "$out/lamost-files/labels.parquet" --min-snr 20 \
    --seed "$seed" --out "$out/model"

adapters=("$out/adapters/zeroshot")
step "zero-shot" "$out/adapters/zeroshot/adapter-card.json" \
  "$bin" finetune --strategy zeroshot --n-train 0 --spectra "$out/desi" --labels "$out/desi-files/labels.parquet" \
    --model "$out/model" --out "$out/adapters/zeroshot"
for n in $n_train; do
  for s in full lora reshead; do
    dir="$out/adapters/$s-n$n"
    adapters+=("$dir")
    step "$s, $n DESI labels" "$dir/adapter-card.json" \
      "$bin" finetune --strategy "$s" --n-train "$n" --seed "$seed" --spectra "$out/desi" \
        --labels "$out/desi-files/labels.parquet" --model "$out/model" --out "$dir"
  done
done

step "pre-train the encoder on LAMOST + DESI spectra" "$out/encoder/encoder-card.json" \
  "$bin" train-encoder --spectra "$out/lamost" "$out/desi" --max-spectra "$encoder_spectra" \
    --max-epochs "$encoder_epochs" --seed "$seed" --out "$out/encoder"
step "embed LAMOST" "$out/emb-lamost/done" bash -c \
  "'$bin' embed --spectra '$out/lamost' --encoder '$out/encoder' --out '$out/emb-lamost' && touch '$out/emb-lamost/done'"
step "embed DESI" "$out/emb-desi/done" bash -c \
  "'$bin' embed --spectra '$out/desi' --encoder '$out/encoder' --out '$out/emb-desi' && touch '$out/emb-desi/done'"
step "pre-train on LAMOST embeddings" "$out/model-emb/model-card.json" \
  "$bin" train --spectra "$out/emb-lamost" --labels "$out/lamost-files/labels.parquet" --min-snr 20 \
    --seed "$seed" --out "$out/model-emb"
emb_adapters=("$out/adapters-emb/zeroshot")
step "embeddings: zero-shot" "$out/adapters-emb/zeroshot/adapter-card.json" \
  "$bin" finetune --strategy zeroshot --n-train 0 --spectra "$out/emb-desi" --labels "$out/desi-files/labels.parquet" \
    --model "$out/model-emb" --out "$out/adapters-emb/zeroshot"
for n in $n_train; do
  for s in full lora reshead; do
    dir="$out/adapters-emb/$s-n$n"
    emb_adapters+=("$dir")
    step "embeddings: $s, $n DESI labels" "$dir/adapter-card.json" \
      "$bin" finetune --strategy "$s" --n-train "$n" --seed "$seed" --spectra "$out/emb-desi" \
        --labels "$out/desi-files/labels.parquet" --model "$out/model-emb" --out "$dir"
  done
done

echo "== evaluate on held-out DESI stars: pixels, embeddings, hybrids"
"$bin" evaluate --spectra "$out/desi" --labels "$out/desi-files/labels.parquet" --model "$out/model" \
  --adapter "${adapters[@]}" --embedding-model "$out/model-emb" --embeddings "$out/emb-desi" \
  --embedding-adapter "${emb_adapters[@]}" --out "$out/evaluation"
echo
echo "Table: $out/evaluation/evaluation.md (Parquet beside it). Compare e.g.:"
echo "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT input, strategy, regime, n, round(robust_sigma,3) AS rsig, round(bias,3) AS bias FROM '$out/evaluation/evaluation.parquet' WHERE parameter='feh' ORDER BY regime, rsig\\\").show(max_rows=200)\""
