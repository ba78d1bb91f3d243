#!/usr/bin/env bash
# Test set-up, then the command it is given: the README's test command is
#   scripts/test-env.sh cargo test --locked -- --include-ignored
# and .ci/run runs exactly that.
#  1. Python packages for the cross-checks (DuckDB, astropy, hats, polars) in a virtual
#     environment, .venv-test/ (or $STARPIPE_TEST_VENV), re-installed only when
#     scripts/requirements-test.txt changes; the tests find it through $PYTHON.
#  2. A single-node SLURM cluster where this machine allows one (root, or sudo without a
#     password: scripts/slurm/start-local-cluster.sh). The SLURM test is #[ignore]d with its reason
#     in a plain `cargo test`; with --include-ignored it runs, and fails saying why without a cluster.
#  3. exec "$@".
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -eq 0 ]]; then
  echo "usage: scripts/test-env.sh COMMAND... (e.g. cargo test --locked -- --include-ignored)" >&2
  exit 2
fi

venv="${STARPIPE_TEST_VENV:-$PWD/.venv-test}"
requirements=scripts/requirements-test.txt
if [[ ! -x "$venv/bin/python" ]]; then
  echo "test-env: creating the Python environment $venv"
  python3 -m venv "$venv"
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
  echo "test-env: installing $requirements into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$venv/.requirements.sha256"
fi
export PYTHON="$venv/bin/python"

if [[ "${STARPIPE_SKIP_SLURM:-}" != 1 ]] && { [[ "$(id -u)" -eq 0 ]] || sudo -n true 2>/dev/null; }; then
  if ! scripts/slurm/start-local-cluster.sh; then
    echo "test-env: could not start the single-node SLURM cluster (see above)" >&2
    [[ "${CI:-}" == true ]] && exit 1
  fi
else
  echo "test-env: no SLURM cluster here (needs root or passwordless sudo): with --include-ignored the SLURM test fails saying so"
fi

exec "$@"
