#!/usr/bin/env bash
# Where the server spends its time at high concurrency: py-spy samples `llmserve serve` and
# every process under it (fronts, engine workers, engine cores) while `llmserve load` sends
# concurrent /predict singles; collapsed stacks (py-spy's raw format) and the load record
# go to OUT.
#
#   usage: bash scripts/gpu_profile.sh OUT [API_SERVERS]    (default 1)
#   PYSPY=path/to/py-spy (default: py-spy), PYTHON=python (default python3),
#   SINGLES=4096 requests, SECONDS_=25 seconds sampled; the service's other settings come from
#   the environment (e.g. ENGINE_REPLICAS=2). Where nvidia-smi is, the GPU's busy share per
#   second goes to OUT/gpu-API_SERVERS.txt (`nvidia-smi dmon -s u`) for the same seconds.
#   Summary: python scripts/pyspy_summary.py OUT/stacks-API_SERVERS.txt
set -euo pipefail
out=${1:?usage: gpu_profile.sh OUT [API_SERVERS]}
fronts=${2:-1}
py=${PYTHON:-python3}
pyspy=${PYSPY:-py-spy}
here=$(cd "$(dirname "$0")/.." && pwd)
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$out"
cd "$here"
API_SERVERS=$fronts MAX_WAITING_PROMPTS=$((4096 * fronts)) MAX_BATCH_PROMPTS=1024 \
  setsid "$py" -m llmserve serve --host 127.0.0.1 --port "$port" >"$out/serve-$fronts.log" 2>&1 &
server=$!
trap 'kill -TERM -- -$server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/" >/dev/null; do
  kill -0 "$server" || { tail -20 "$out/serve-$fronts.log"; exit 1; }
  sleep 1
done
"$pyspy" record --pid "$server" --subprocesses --rate 100 --duration "${SECONDS_:-25}" \
  --format raw -o "$out/stacks-$fronts.txt" --nonblocking &
spy=$!
if command -v nvidia-smi >/dev/null; then
  nvidia-smi dmon -s u -d 1 -c "${SECONDS_:-25}" >"$out/gpu-$fronts.txt" 2>&1 &
fi
"$py" -m llmserve load --url "http://127.0.0.1:$port" --singles "${SINGLES:-4096}" --lists 0 \
  --verify 0 --no-progress --out "$out/load-$fronts.json" || true
wait "$spy" || true
echo "profile: $out/stacks-$fronts.txt"
