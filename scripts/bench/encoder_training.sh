#!/usr/bin/env bash
# Encoder pre-training speed on this machine: `train-encoder` for one epoch per preset on the same
# spectra (release build), wall time → training spectra/s, and the projected time of pre-training
# on 20,000 spectra for a few epochs (the CPU sizing question of issue 16). With PAIRS=1 the run
# adds the contrastive term on a crossmatch (a DESI mock sharing stars with the LAMOST one).
# usage: scripts/bench/encoder_training.sh [PRESET ...]   (default: small medium)
# Environment: N (2000 spectra per survey), WORK (a scratch folder, default /tmp/starpipe-enc-bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin starpipe
bin="${CARGO_TARGET_DIR:-target}/release/starpipe"
if [ $# -gt 0 ]; then presets=("$@"); else presets=(small medium); fi
n="${N:-2000}"
work="${WORK:-/tmp/starpipe-enc-bench}"
mkdir -p "$work"
[ -e "$work/lamost/ingest-summary-00000-of-00001.json" ] || {
    "$bin" mock --survey lamost --n "$n" --seed 3 --out "$work/lamost-files" > /dev/null
    "$bin" mock --survey desi --n "$n" --seed 4 --overlap "$work/lamost-files" --overlap-fraction 0.5 \
        --out "$work/desi-files" > /dev/null
    for s in lamost desi; do
        "$bin" ingest --survey $s --input "$work/$s-files" --grid specclip --no-progress --out "$work/$s" > /dev/null
    done
}
pairs=()
[ "${PAIRS:-0}" = 1 ] && pairs=(--pairs "$work/desi-files/crossmatch.parquet")
for preset in "${presets[@]}"; do
    rm -rf "$work/enc-$preset"
    t0=$(date +%s.%N)
    "$bin" train-encoder --spectra "$work/lamost" "$work/desi" --preset "$preset" --max-epochs 1 --fresh \
        "${pairs[@]}" --out "$work/enc-$preset" > "$work/enc-$preset.log" 2>&1
    t1=$(date +%s.%N)
    python3 - "$work/enc-$preset/encoder-card.json" "$t0" "$t1" "$preset" <<'PY'
import json, sys
card = json.load(open(sys.argv[1]))
secs = float(sys.argv[3]) - float(sys.argv[2])
n = card["n_train"] + card["n_val"]
rate = card["n_train"] / secs
print(json.dumps({"preset": sys.argv[4], "parameters": card["n_parameters"],
                  "mflop_per_spectrum": round(card["flops_per_spectrum"] / 1e6, 1),
                  "pairs": (card.get("objective") or {}).get("n_train_pairs", 0),
                  "train_spectra_per_s": round(rate, 1), "seconds_one_epoch": round(secs, 1),
                  "minutes_20k_spectra": {e: round(20000 * e / rate / 60, 1) for e in (1, 3, 5)}}))
PY
done
