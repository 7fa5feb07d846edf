#!/usr/bin/env bash
# One command to test: set up (or reuse) the environment with the dev tools, run pytest.
# Arguments go to pytest (e.g. bash run_tests.sh -k settings).
set -euo pipefail
# requirements-llamacpp.txt: the llama.cpp engine tests (tests/engines/test_engine_llamacpp.py).
export EXTRA_REQUIREMENTS="requirements-dev.txt requirements-llamacpp.txt ${EXTRA_REQUIREMENTS:-}"
source "$(dirname "$0")/scripts/setup_env.sh"
# tests/http/test_ui.py drives a real headless browser: Debian's chromium, through Playwright (never
# `playwright install`: no browser downloads). Installed where we are root with apt (CI); the
# test skips, saying why, only on a machine where /usr/bin/chromium is absent and this failed.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing chromium (apt) for tests/http/test_ui.py" >&2
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
    >/dev/null 2>&1 || echo "setup: could not install chromium; tests/http/test_ui.py's browser tests will skip" >&2
fi
exec "$PY" -m pytest "$@"
