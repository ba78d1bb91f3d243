#!/usr/bin/env bash
# The fuzz benchmark: ≥ 10,000 damaged LAMOST files and ≥ 2,000 damaged DESI coadd + redrock pairs
# (starpipe::fuzz, seeded) ingested by the release binary in batches; prints one JSON line per
# survey (crashes, hangs, accounted, non-finite values, wall time). Results: scripts/bench/README.md.
# Usage: scripts/bench/fuzz.sh [LAMOST_N] [DESI_N] [SEED]   (work files in $FUZZ_WORK or a temp dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
lamost_n="${1:-10000}"; desi_n="${2:-2000}"; seed="${3:-1}"
# FUZZ_PROFILE=dev reuses the test build (starpipe at opt-level 1) instead of a release build.
profile="${FUZZ_PROFILE:-release}"
cargo build --profile "$profile" --quiet --bin starpipe --example fuzz_ingest
target="${CARGO_TARGET_DIR:-target}/$([[ "$profile" == dev ]] && echo debug || echo "$profile")"
work="${FUZZ_WORK:-$(mktemp -d)}"
trap '[[ -z "${FUZZ_WORK:-}" ]] && rm -rf "$work"' EXIT

# Real files only (tests/data), plus one mock DESI pixel: the real DESI pairs hold galaxies and the
# one real star has no redrock file, so the mock adds redrock-selected stars to damage.
mapfile -t lamost < <(find tests/data/real/lamost tests/data/lamost_dr10_pylasp -name '*.fits' -o -name '*.fits.gz' | sort)
"$target/starpipe" mock --survey desi --n 40 --rows-per-coadd 64 --seed 4 --out "$work/desi-mock" >/dev/null
mock_coadd="$(find "$work/desi-mock" -name 'coadd-*.fits' | sort | head -1)"
desi=(tests/data/real/desi/coadd-4-80613-thru20210324.fits tests/data/real/desi/coadd-special-dark-27247.fits
      tests/data/real/desi/coadd-sv3-bright-10145.fits tests/data/real/desi/spectra-sv3-dark-26065.fits "$mock_coadd")

"$target/examples/fuzz_ingest" --survey lamost --n "$lamost_n" --seed "$seed" --batch 2000 \
  --work "$work/lamost" --starpipe "$target/starpipe" "${lamost[@]}"
"$target/examples/fuzz_ingest" --survey desi --n "$desi_n" --seed "$seed" --batch 500 \
  --work "$work/desi" --starpipe "$target/starpipe" "${desi[@]}"
