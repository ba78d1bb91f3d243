# Sourced by the experiment scripts (experiments/transfer-experiment.sh, experiments/real-stars.sh):
# builds starpipe (unless STARPIPE_BIN is set), sets $bin, and defines `step`, which makes a long script resumable.

# STARPIPE_BIN runs a given binary instead (e.g. a release build copied aside, so that rebuilding
# while a long experiment runs does not change the binary under it).
if [[ -n "${STARPIPE_BIN:-}" ]]; then
  bin="$STARPIPE_BIN"
else
  cargo build --quiet
  bin="${CARGO_TARGET_DIR:-target}/debug/starpipe"
fi

step() { # step NAME DONE_FILE COMMAND...: run unless DONE_FILE exists
  local name="$1" done="$2"; shift 2
  if [[ -e "$done" ]]; then echo "== $name: done earlier ($done)"; return; fi
  echo "== $name"; "$@"
}
