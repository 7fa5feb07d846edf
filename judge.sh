#!/usr/bin/env bash
# The pre-submit check: score the service like the grader (RougeL-F1 both ways, tokens/s).
#
#   bash judge.sh                 evaluate the server already running (bash run_model.sh)
#   bash judge.sh --start         start one with the current environment, evaluate, stop it
#   bash judge.sh --limit 20 ...  any other arguments go to `llmserve judge` (eval_local.py;
#                                 see --help)
#
# Environment (all optional):
#   JUDGE_URL    server to evaluate (default http://127.0.0.1:${PORT:-8000})
#   JUDGE_START  1: the same as --start (the started server gets 127.0.0.1 and a free port)
#   DATA         data file, jsonl or .docx (default data.jsonl in this directory)
#   SPLIT        split to evaluate, or "all" (default test)
#   N            evaluate only the first N items
#   MODE         seq (default), batch, or concurrent
#   BATCH_SIZE   prompts per request in MODE=batch (default: the server's MAX_BATCH_PROMPTS)
#   CONCURRENCY  requests in flight in MODE=concurrent (default 8)
#   SCORER       cjk (default) or compat: the scorer MIN_SCORE checks
#   MIN_SCORE    fail (exit 3) when the mean RougeL-F1 is below this
#   MIN_TPS      fail (exit 3) when output tokens/s is below this
#   OUT          output folder (default results/judge/<timestamp>)
#   TOKENIZER    tokenizer directory, when /info's model_dir is not on this machine
#   VENV_DIR     virtual environment (default .venv; python3 when it is absent)
# Exit codes: 0 pass, 2 bad arguments or data, 3 a gate failed, 4 server down or failing,
# 130 interrupted (rerun with --resume to finish).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # paths you pass stay relative to your cwd

venv=${VENV_DIR:-.venv}
[[ "$venv" == /* ]] || venv="$root/$venv"
PYTHON="$venv/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # llmserve from any directory, any python

args=(--url "${JUDGE_URL:-http://127.0.0.1:${PORT:-8000}}"
      --data "${DATA:-$root/data.jsonl}" --split "${SPLIT:-test}")
case "${MODE:-seq}" in
  seq | sequential) ;;
  batch) args+=(--batch ${BATCH_SIZE:+--batch-size "$BATCH_SIZE"}) ;;
  concurrent) args+=(--concurrency "${CONCURRENCY:-8}") ;;
  *) echo "judge.sh: MODE=${MODE} is not one of seq, batch, concurrent" >&2; exit 2 ;;
esac
[[ -n "${N:-}" ]] && args+=(--limit "$N")
[[ -n "${SCORER:-}" ]] && args+=(--scorer "$SCORER")
[[ -n "${MIN_SCORE:-}" ]] && args+=(--min-score "$MIN_SCORE")
[[ -n "${MIN_TPS:-}" ]] && args+=(--min-tps "$MIN_TPS")
[[ -n "${OUT:-}" ]] && args+=(--out "$OUT")
[[ -n "${TOKENIZER:-}" ]] && args+=(--tokenizer "$TOKENIZER")
[[ "${JUDGE_START:-0}" == 1 ]] && args+=(--start)

# exec: the exit code is the judge's own (gates included), and Ctrl-C reaches it directly,
# so a server that --start launched is stopped by the judge itself (its process group only).
exec "$PYTHON" -m llmserve judge "${args[@]}" "$@"
