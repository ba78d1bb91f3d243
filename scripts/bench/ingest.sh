#!/usr/bin/env bash
# Builds the release binaries, then runs the ingest benchmark (see ingest.py for what it compares).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin starpipe --example desi_raw_decode
python3 scripts/bench/ingest.py "$@"
