#!/usr/bin/env bash
# One command to serve: set up (or reuse) the environment, prepare the model, start uvicorn.
# Settings come from the environment (see README); HOST/PORT default to 0.0.0.0:8000, and
# arguments go to `llmserve serve` (--host, --port). `llmserve serve` applies the engine's
# launch environment itself (on CPU: LD_PRELOAD of tcmalloc and Intel OpenMP), never over the
# user's own values.
set -euo pipefail
source "$(dirname "$0")/scripts/setup_env.sh"
exec "$PY" -m llmserve serve "$@"
