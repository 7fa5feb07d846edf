#!/usr/bin/env bash
# Auto-tune the server's settings (see `bash auto_tune.sh --help` and docs/tune.md).
#
#   bash auto_tune.sh --trials 8 --limit 40 --env ENFORCE_EAGER=1
#   source results/tune/best.env && bash run_model.sh
#
# Arguments go to `llmserve tune` (auto_tune.py). Environment: VENV_DIR (default .venv; python3
# when absent).
# Rerunning the same command resumes an interrupted search.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # paths you pass stay relative to your cwd

venv=${VENV_DIR:-.venv}
[[ "$venv" == /* ]] || venv="$root/$venv"
PYTHON="$venv/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # llmserve from any directory, any python
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" VLLM_NO_USAGE_STATS="${VLLM_NO_USAGE_STATS:-1}"

# exec: Ctrl-C and SIGTERM reach the tuner itself, which stops its trial's server first.
exec "$PYTHON" -m llmserve tune "$@"
