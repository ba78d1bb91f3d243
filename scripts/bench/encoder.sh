#!/usr/bin/env bash
# Encoder throughput (`starpipe throughput encoder`): spectra/s and achieved GFLOP/s of the small
# and SpecCLIP-size presets, network only (tokens in memory), on the CPU or, with a
# `--features cuda` build on a GPU machine, `--device cuda` (add `--precision bf16` there).
# usage: scripts/bench/encoder.sh [--device cpu|cuda] [--precision f32|bf16] [--batch 64] [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin starpipe
bin="${CARGO_TARGET_DIR:-target}/release/starpipe"
for preset in small specclip; do
    "$bin" throughput encoder --preset "$preset" "$@"
done
