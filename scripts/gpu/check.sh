#!/usr/bin/env bash
# The GPU check, to run once on a machine with an NVIDIA GPU and a `--features cuda` starpipe
# (scripts/gpu/build.sh): about 5 minutes on an H200 with 16 cores, 10 at most.
#   1. correctness: `infer` and `embed` on the GPU in f32 and bf16 against the CPU f32 outputs of the
#      same binary (scripts/gpu/compare.py; tolerances there);
#   2. speed, network only: `starpipe throughput` (MLP; encoder, small and SpecCLIP size) in f32 and
#      bf16 beside the PyTorch baselines (scripts/bench/infer_torch.py, encoder_torch.py);
#   3. speed, end to end: `infer` in f32 and bf16 beside infer_torch.py on the same shards;
#   4. training in f32 and in bf16 mixed precision (f32 master weights): `train` (MLP) and
#      `train-encoder --preset specclip` (small with DEVICE=cpu), spectra per second and the
#      validation loss each reached.
# Results: OUT/correctness.json, OUT/speed.jsonl (one JSON line per measurement), OUT/check.log.
#
# usage: scripts/gpu/check.sh [BINARY] [OUT]
#   BINARY  a `--features cuda` build (default: build.sh's ~/.cache/starpipe-target-cuda/release/starpipe)
#   OUT     results folder (default: $OUT when set, else /tmp/starpipe-gpu-check)
# Put the CUDA 13 libraries on LD_LIBRARY_PATH (scripts/gpu/README.md). PYTHON: a Python with torch,
# numpy and pyarrow (default python3). DEVICE=cpu runs every step on the CPU with small sizes: a test
# of this script on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-$HOME/.cache/starpipe-target-cuda/release/starpipe}
[ -x "$BIN" ] || { echo "check.sh: no starpipe binary at $BIN (scripts/gpu/build.sh builds one)" >&2; exit 2; }
BIN=$(realpath "$BIN")
OUT=${2:-${OUT:-/tmp/starpipe-gpu-check}}
DEVICE=${DEVICE:-cuda}
case "$DEVICE" in cuda | cpu) ;; *) echo "check.sh: DEVICE is cuda or cpu, not '$DEVICE'" >&2; exit 2 ;; esac
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/speed.jsonl"
: > "$OUT/check.log"
W=$(mktemp -d /tmp/starpipe-gpu-check.XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ "$DEVICE" = cuda ]; then
    N=20000 ENC_N=4000 SECS=5 MLP_BATCH="4096 16384" ENC_BATCH="64 256"
else
    N=300 ENC_N=100 SECS=1 MLP_BATCH="1024" ENC_BATCH="2"
fi
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/check.log"; }
sp() { log "starpipe $*"; "$BIN" "$@" >> "$OUT/check.log" 2>&1; }

log "binary: $BIN ($("$BIN" --version)); device $DEVICE"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/check.log"

# Data (CPU): a LAMOST mock on the specclip grid. A model and a small encoder trained on the device
# (speed and agreement do not depend on how well they are trained).
sp mock --survey lamost --n "$N" --seed 1 --out "$W/mock"
sp ingest --survey lamost --input "$W/mock" --grid specclip --out "$W/spectra"
sp train --spectra "$W/spectra" --labels "$W/mock/labels.parquet" --max-epochs 3 --device "$DEVICE" --out "$W/model"
sp train-encoder --spectra "$W/spectra" --preset small --max-spectra "$ENC_N" --max-epochs 1 --device "$DEVICE" \
    --out "$W/encoder"

# 1. Correctness, and end-to-end speed of starpipe (wall time of each command).
n_spectra=$("$PY" -c "import glob,pyarrow.parquet as pq; print(sum(pq.ParquetFile(p).metadata.num_rows for p in glob.glob('$W/spectra/spectra-*.parquet')))")
timed() { # name precision command...
    local name=$1 precision=$2
    shift 2
    local t0 t1
    t0=$(date +%s.%N)
    sp "$@"
    t1=$(date +%s.%N)
    "$PY" -c "import json; s=$t1-$t0; print(json.dumps({'impl': 'candle', 'network': '$name', 'device': '${dev}', 'precision': '$precision', 'end_to_end': True, 'spectra': $n_spectra, 'seconds': round(s, 3), 'spectra_per_s': round($n_spectra / s, 1)}))" >> "$OUT/speed.jsonl"
}
# The CPU f32 outputs are the reference (`ref`); then the device in f32 and bf16.
for run_spec in "ref cpu f32" "$DEVICE-f32 $DEVICE f32" "$DEVICE-bf16 $DEVICE bf16"; do
    read -r name dev precision <<< "$run_spec"
    timed mlp "$precision" infer --spectra "$W/spectra" --model "$W/model" --device "$dev" --precision "$precision" \
        --out "$W/pred-$name"
    timed encoder-small "$precision" embed --spectra "$W/spectra" --encoder "$W/encoder" --device "$dev" \
        --precision "$precision" --out "$W/emb-$name"
done
status=0
"$PY" scripts/gpu/compare.py "$W" "$DEVICE" | tee "$OUT/correctness.json" || status=1

torch=yes
"$PY" -c "import torch" 2> /dev/null || { torch=no; log "no PyTorch in $PY: the PyTorch baselines are skipped"; }

# 2. Network only, starpipe and PyTorch on the same device.
for precision in f32 bf16; do
    # shellcheck disable=SC2086
    sp throughput mlp --model "$W/model" --device "$DEVICE" --precision "$precision" --seconds "$SECS" \
        $(printf -- '--batch %s ' $MLP_BATCH)
    for preset in small specclip; do
        # shellcheck disable=SC2086
        sp throughput encoder --preset "$preset" --device "$DEVICE" --precision "$precision" --seconds "$SECS" \
            $(printf -- '--batch %s ' $ENC_BATCH)
    done
    [ "$torch" = yes ] || continue
    # shellcheck disable=SC2086
    "$PY" scripts/bench/infer_torch.py "$W/model" --network-only --device "$DEVICE" --dtype "$precision" \
        --batch $MLP_BATCH >> "$OUT/speed.jsonl" 2>> "$OUT/check.log"
    for preset in small specclip; do
        # shellcheck disable=SC2086
        "$PY" scripts/bench/encoder_torch.py --preset "$preset" --device "$DEVICE" --dtype "$precision" \
            --seconds "$SECS" --batch $ENC_BATCH >> "$OUT/speed.jsonl" 2>> "$OUT/check.log"
    done
    # 3. End to end, PyTorch (its reported seconds exclude interpreter start-up and `import torch`).
    "$PY" scripts/bench/infer_torch.py "$W/model" "$W/spectra" "$W/torch-$precision" --device "$DEVICE" \
        --dtype "$precision" --batch 4096 2>> "$OUT/check.log" \
        | "$PY" -c "import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); r.update(network='mlp', device='$DEVICE', end_to_end=True, spectra_per_s=round(r['spectra']/r['seconds'],1)); print(json.dumps(r))" \
        >> "$OUT/speed.jsonl"
done

# 4. Training, f32 against bf16 mixed precision, same data, seed and epochs. The cards record the
# validation loss reached, so a bf16 run that trains fast but badly shows.
if [ "$DEVICE" = cuda ]; then TRAIN_EPOCHS=5 ENC_PRESET=specclip; else TRAIN_EPOCHS=2 ENC_PRESET=small; fi
trained() { # name precision card-json command... (epochs: as many as the card's validation losses)
    local name=$1 precision=$2 card=$3
    shift 3
    local t0 t1
    t0=$(date +%s.%N)
    sp "$@"
    t1=$(date +%s.%N)
    "$PY" - "$card" <<PY >> "$OUT/speed.jsonl"
import json, sys
c = json.load(open(sys.argv[1]))
t = c.get("training", {}).get("report") or c
n = c.get("training", {}).get("n_train") or c.get("n_train")
s = $t1 - $t0
val = t.get("val_loss") or [None]
print(json.dumps({"impl": "candle", "network": "$name", "device": "$DEVICE", "precision": "$precision",
                  "training": True, "epochs": len(val), "spectra": n, "seconds": round(s, 3),
                  "spectra_per_s": round(n * len(val) / s, 1), "last_val_loss": val[-1]}))
PY
}
for precision in f32 bf16; do
    trained mlp-train "$precision" "$W/train-$precision/model-card.json" \
        train --spectra "$W/spectra" --labels "$W/mock/labels.parquet" --max-epochs "$TRAIN_EPOCHS" \
        --patience 100 --device "$DEVICE" --precision "$precision" --out "$W/train-$precision"
    trained "encoder-$ENC_PRESET-train" "$precision" "$W/enc-$precision/encoder-card.json" \
        train-encoder --spectra "$W/spectra" --preset "$ENC_PRESET" --max-spectra "$ENC_N" --max-epochs 1 \
        --device "$DEVICE" --precision "$precision" --out "$W/enc-$precision"
done

grep '^{' "$OUT/check.log" | grep '"impl": "candle"' >> "$OUT/speed.jsonl" || true
log "speed (spectra/s):"
"$PY" - "$OUT/speed.jsonl" <<'PY' | tee -a "$OUT/check.log"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in sorted(rows, key=lambda r: (r.get("network", ""), bool(r.get("end_to_end")), r.get("precision", ""), r.get("batch", 0), r["impl"])):
    kind = "end to end" if r.get("end_to_end") else "training" if r.get("training") else f"batch {r.get('batch')}"
    extra = f"  val loss {r['last_val_loss']:.4f}" if r.get("last_val_loss") is not None else ""
    print(f"{r.get('network', ''):<22} {r.get('device', ''):<5} {r.get('precision', ''):<5} {kind:<12} {r['impl']:<7} {r['spectra_per_s']:>12,.0f}{extra}")
PY
log "done: $OUT (correctness $([ $status = 0 ] && echo passed || echo FAILED))"
exit $status
