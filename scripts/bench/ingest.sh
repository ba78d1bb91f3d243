#!/usr/bin/env bash
# Builds the release binaries, then runs the ingest benchmark (see ingest.py for what it compares).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin starpipe --example desi_raw_decode
py=python3; [[ -x .venv-test/bin/python ]] && py=.venv-test/bin/python   # needs astropy, numpy, pyarrow
"$py" scripts/bench/ingest.py "$@"
