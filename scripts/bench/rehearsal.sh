#!/usr/bin/env bash
# Release-scale rehearsal (pipelines/rehearsal-desi.toml, measured stage by stage): builds the
# release binary, then runs scripts/bench/rehearsal.py. Needs ~40 GB free under --work (default
# $TMPDIR/starpipe-rehearsal) for 50,000 stars; `--n 5000` for a quick look.
#
#   scripts/bench/rehearsal.sh [--work DIR] [--shards 4] [--n 50000] [--keep]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin starpipe
py=python3; [[ -x .venv-test/bin/python ]] && py=.venv-test/bin/python   # needs pyarrow and duckdb
exec "$py" scripts/bench/rehearsal.py "$@"
