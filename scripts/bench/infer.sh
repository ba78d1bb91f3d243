#!/usr/bin/env bash
# Inference benchmark (see infer.py): starpipe (release) beside PyTorch CPU on the same model and shards.
# usage: scripts/bench/infer.sh --model MODEL_DIR --spectra SHARD_DIR [--python PY_WITH_TORCH] [--threads 2]
# A model and shards come from e.g. experiments/transfer-experiment.sh (out/transfer-experiment/{model,lamost}).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin starpipe
python3 scripts/bench/infer.py "$@"
