#!/usr/bin/env bash
# Auto-tune the server's settings (see `bash auto_tune.sh --help` and the README).
#
#   bash auto_tune.sh --trials 8 --limit 40 --set ENFORCE_EAGER=1
#   source results/tune/best.env && bash run_model.sh
#
# Arguments go to auto_tune.py. Environment: VENV_DIR (default .venv; python3 when absent).
# Rerunning the same command resumes an interrupted search.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${VENV_DIR:-.venv}/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" VLLM_NO_USAGE_STATS="${VLLM_NO_USAGE_STATS:-1}"

# exec: Ctrl-C and SIGTERM reach the tuner itself, which stops its trial's server first.
exec "$PYTHON" auto_tune.py "$@"
