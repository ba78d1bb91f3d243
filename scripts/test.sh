#!/usr/bin/env bash
# The one test command (README "Quick start"; .ci/run calls exactly this).
#  1. Python packages for the cross-checks (DuckDB, astropy, hats, polars) in a virtual
#     environment, .venv-test/ (or $STARPIPE_TEST_VENV), re-installed only when
#     scripts/requirements-test.txt changes; the tests find it through $PYTHON.
#  2. A single-node SLURM cluster where this machine allows one (root, or sudo without a
#     password: scripts/slurm/start-local-cluster.sh); then the SLURM tests run too and must pass.
#     Elsewhere they are reported as ignored, with the reason, and this script says so.
#  3. cargo test (arguments are passed on: scripts/test.sh fuzz_corpus runs the matching tests).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${STARPIPE_TEST_VENV:-$PWD/.venv-test}"
requirements=scripts/requirements-test.txt
if [[ ! -x "$venv/bin/python" ]]; then
  echo "test.sh: creating the Python environment $venv"
  python3 -m venv "$venv"
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
  echo "test.sh: installing $requirements into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$venv/.requirements.sha256"
fi
export PYTHON="$venv/bin/python"

slurm=no
if [[ "${STARPIPE_SKIP_SLURM:-}" != 1 ]] && { [[ "$(id -u)" -eq 0 ]] || sudo -n true 2>/dev/null; }; then
  if scripts/slurm/start-local-cluster.sh; then
    slurm=yes
  else
    echo "test.sh: could not start the single-node SLURM cluster (see above)" >&2
    [[ "${CI:-}" == true ]] && exit 1
  fi
fi

cargo test --locked "$@"
if [[ "$slurm" == yes && $# -eq 0 ]]; then
  # The cluster is up: the tests that need it run, and a missing cluster would fail them.
  cargo test --locked --test integration -- --ignored slurm::
elif [[ "$slurm" == no ]]; then
  echo "test.sh: no SLURM cluster here (needs root or passwordless sudo): the SLURM tests were not run"
fi
