#!/usr/bin/env bash
# Builds the `cuda` starpipe binary on a machine without a GPU or a system CUDA: a CUDA 13.0
# toolchain is assembled from PyPI wheels (make_cuda_home.sh: nvcc, headers, cudart, cuBLAS,
# cuRAND, NVRTC, and a link-time libcuda stub), then `cargo build --release --features cuda`.
# ~25 min on 2 cores the first time (11 of them nvcc on candle's kernels); the target directory
# (default ~/.cache/starpipe-target-cuda, apart from the CPU build's) keeps them for next time.
#
#   scripts/gpu/build.sh [CUDA_COMPUTE_CAP=90]     # 90: H100/H200 (sm_90a); 80: A100
#
# The binary starts on any machine, with or without the NVIDIA driver (cudarc loads the CUDA
# libraries at run time: vendor/candle-core/STARPIPE.md); scripts/gpu/check-cpu.sh checks that.
# On a GPU node, put the CUDA 13 libraries on LD_LIBRARY_PATH (e.g. the nvidia-*-cu13 wheels'
# lib folder); the driver provides libcuda.so.1. Pin nvcc to 13.0: newer PTX fails on r580 drivers.
set -euo pipefail
cd "$(dirname "$0")/../.."
cap="${1:-${CUDA_COMPUTE_CAP:-90}}"
cuda_home="${CUDA_HOME_DIR:-/tmp/cuda13}"
venv="${CUDA_VENV_DIR:-/tmp/cuda13venv}"
cargo fetch --locked   # make_cuda_home.sh reads cudarc's symbol list from the registry
if [[ ! -x "$cuda_home/bin/nvcc" ]]; then
  bash scripts/gpu/make_cuda_home.sh "$cuda_home" "$venv"
fi
export CUDA_HOME="$cuda_home" PATH="$cuda_home/bin:$PATH" CUDA_COMPUTE_CAP="$cap"
export CARGO_TARGET_DIR="${STARPIPE_CUDA_TARGET:-$HOME/.cache/starpipe-target-cuda}"
cargo build --release --locked --features cuda --bin starpipe
bin="$CARGO_TARGET_DIR/release/starpipe"
echo "built $bin ($(du -h "$bin" | cut -f1)); check it here with: scripts/gpu/check-cpu.sh $bin"
