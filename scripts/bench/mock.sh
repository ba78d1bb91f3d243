#!/usr/bin/env bash
# Mock-survey generation speed, per core: `starpipe mock --survey lamost` on one thread, into a
# tmpfs (/dev/shm, CPU cost only) and into a disk directory (with the file system's cost of
# creating one file per spectrum). Target (issue 3): >= 2,000 spectra/s per core.
# Usage: scripts/bench/mock.sh [N] [DISK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-4000}"
disk="${2:-/tmp/starpipe-bench/mock}"
cargo build --release --bin starpipe
bin="${CARGO_TARGET_DIR:-target}/release/starpipe"
for dir in /dev/shm/starpipe-mock-bench "$disk"; do
  rm -rf "$dir"
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=1 "$bin" mock --survey lamost --n "$n" --out "$dir" --seed 1 > /dev/null
  end=$(date +%s.%N)
  python3 -c "print(f'{\"$dir\":40s} {$n} spectra, one thread: {$n/($end-$start):7.0f} spectra/s')"
  rm -rf "$dir"
done
# DESI: FIBERMAP rows (stars + contaminants) per second, one thread, into the disk directory.
rm -rf "$disk"
start=$(date +%s.%N)
RAYON_NUM_THREADS=1 "$bin" mock --survey desi --n "$n" --out "$disk" --seed 1 > /dev/null
end=$(date +%s.%N)
rows=$(($(wc -l < "$disk/labels.csv") - 1))
python3 -c "print(f'{\"desi ($disk)\":40s} {$rows} rows ({$n} stars), one thread: {$rows/($end-$start):7.0f} rows/s; {$n/($end-$start):7.0f} stars/s')"
du -sh "$disk"
rm -rf "$disk"
