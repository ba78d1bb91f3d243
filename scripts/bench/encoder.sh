#!/usr/bin/env bash
# Encoder throughput (examples/encoder_throughput.rs): spectra/s and achieved GFLOP/s of the small
# and SpecCLIP-size presets, network only, on the CPU (or `cuda` on a GPU machine with a
# `--features cuda` build). Examples link the dev-dependencies, so this is a dev-profile build,
# whose candle and gemm are compiled at opt-level 3 (Cargo.toml).
# usage: scripts/bench/encoder.sh [cpu|cuda] [--batch 64] [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --example encoder_throughput
"${CARGO_TARGET_DIR:-target}/debug/examples/encoder_throughput" small specclip "$@"
