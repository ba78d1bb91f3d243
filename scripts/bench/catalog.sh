#!/usr/bin/env bash
# Catalogue benchmark (see catalog.py): 1 M and 10 M synthetic rows through `starpipe catalog --format hats`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin starpipe
python3 scripts/bench/catalog.py "$@"
