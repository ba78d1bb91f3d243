#!/usr/bin/env bash
# Checks a `cuda` starpipe binary on a machine with no GPU driver (this one): it starts, its CPU
# stages work (mock → ingest → train → infer with --device auto → catalogue; slurm's pre-flight),
# `--device auto` falls back to the CPU and says so once, and `--device cuda` stops at once with one
# clear line. No CUDA library is on the loader path (the run's environment is cleaned of
# LD_LIBRARY_PATH), as on a login node or CPU partition.
#
#   scripts/gpu/check-cpu.sh [BINARY=~/.cache/starpipe-target-cuda/release/starpipe]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(realpath "${1:-$HOME/.cache/starpipe-target-cuda/release/starpipe}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run() { env -u LD_LIBRARY_PATH "$bin" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "1. load-time dependencies: no CUDA library"
needed="$(readelf -d "$bin" | grep NEEDED || true)"
echo "$needed" | sed 's/^/   /'
if echo "$needed" | grep -Eq 'libcuda|libcublas|libcurand|libnvrtc|libcudart'; then fail "the binary links a CUDA library at load time"; fi

echo "2. it starts"
run --version || fail "--version"

echo "3. CPU stages, --device auto"
run mock --survey lamost --n 300 --seed 1 --out "$work/mock" > /dev/null
run ingest --survey lamost --input "$work/mock" --grid specclip --out "$work/spectra" --no-progress > /dev/null 2>&1
run train --spectra "$work/spectra" --labels "$work/mock/labels.parquet" --hidden 32,16 --max-epochs 3 \
  --out "$work/model" > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "train"; }
grep -q 'no usable GPU, using the CPU' "$work/train.log" || { cat "$work/train.log"; fail "--device auto did not say it fell back to the CPU"; }
run infer --spectra "$work/spectra" --model "$work/model" --out "$work/pred" > "$work/infer.log" 2>&1 || { cat "$work/infer.log"; fail "infer"; }
run catalog --spectra "$work/spectra" --predictions "$work/pred" --out "$work/catalog.parquet" > /dev/null 2>&1 || fail "catalog"
test -s "$work/catalog.parquet" || fail "no catalogue"

echo "4. --device cuda fails at once with one clear line"
if run infer --spectra "$work/spectra" --model "$work/model" --out "$work/pred-gpu" --device cuda > "$work/cuda.log" 2>&1; then
  fail "--device cuda succeeded without a driver"
fi
grep -q 'no GPU driver or CUDA library found' "$work/cuda.log" || { cat "$work/cuda.log"; fail "unclear --device cuda error"; }
grep -qi 'panick' "$work/cuda.log" && { cat "$work/cuda.log"; fail "--device cuda panicked"; }
sed 's/^/   /' "$work/cuda.log" | tail -2

echo "5. slurm's pre-flight"
run run pipelines/demo.toml --workdir "$work/demo" --dry-run > /dev/null || fail "run --dry-run"
run slurm submit pipelines/demo.toml --workdir "$work/demo" --dry-run > "$work/slurm.log" 2>&1 \
  || { cat "$work/slurm.log"; fail "slurm submit --dry-run"; }
grep -q sbatch "$work/slurm.log" || { cat "$work/slurm.log"; fail "slurm submit --dry-run wrote no sbatch line"; }

echo "ok: $bin starts and runs its CPU stages without a GPU driver"
