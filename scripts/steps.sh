# Sourced by the experiment scripts (pipelines/transfer-experiment.sh, scripts/validate/real-stars.sh):
# builds starpipe, sets $bin, and defines `step`, which makes a long script resumable.

cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/starpipe"

step() { # step NAME DONE_FILE COMMAND...: run unless DONE_FILE exists
  local name="$1" done="$2"; shift 2
  if [[ -e "$done" ]]; then echo "== $name: done earlier ($done)"; return; fi
  echo "== $name"; "$@"
}
