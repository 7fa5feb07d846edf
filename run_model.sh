#!/usr/bin/env bash
# One command to serve: set up (or reuse) the environment, prepare the model, start uvicorn.
# Settings come from the environment (see README); HOST/PORT default to 0.0.0.0:8000.
set -euo pipefail
source "$(dirname "$0")/scripts/setup_env.sh"
eval "$("$PY" -m llmserve.cpu_env)"  # CPU engine defaults (LD_PRELOAD), never over the user's
exec "$PY" -m llmserve "$@"
