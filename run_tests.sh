#!/usr/bin/env bash
# One command to test: set up (or reuse) the environment with the dev tools, run pytest.
# Arguments go to pytest (e.g. bash run_tests.sh -k settings).
set -euo pipefail
export EXTRA_REQUIREMENTS="requirements-dev.txt ${EXTRA_REQUIREMENTS:-}"
source "$(dirname "$0")/scripts/setup_env.sh"
exec "$PY" -m pytest "$@"
