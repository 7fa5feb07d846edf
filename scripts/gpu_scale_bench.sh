#!/usr/bin/env bash
# Issue #13's device tables in one warm session: replicas on one GPU, then TP=2, PP=2 and DP=2
# on two GPUs, each a `llmserve bench` record (record.json, results.md) under OUT.
#
#   usage: bash scripts/gpu_scale_bench.sh OUT [one|fronts|two|all]    (default: all)
#   DRY_RUN=1 prints the commands without running them; REPEATS=N measured runs a row
#   (default 2); SIZE=small runs a small workload
#   (a check of the plumbing, e.g. on a CPU, not figures).
#
# On the device machine (no network), stage vLLM and the project's missing packages first,
# from this machine (../shared/gpu/stage.sh prints the per-chunk plan):
#   bash ../shared/gpu/stage.sh pydantic-settings python-dotenv tenacity jieba rouge-score nltk
# then in one warm session, after the chunks are unpacked and installed into ~/site:
#   export PYTHONPATH=~/site HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
#   timeout 540 bash scripts/gpu_scale_bench.sh ~/scale one   # 1-GPU rows; run it twice
#   timeout 540 bash scripts/gpu_scale_bench.sh ~/scale fronts # API_SERVERS=4 rows, twice
#   timeout 540 bash scripts/gpu_scale_bench.sh ~/scale two   # 2-GPU rows (nvidia-h200-x2)
# Each bench resumes its record (--resume), so a call cut by the time limit is finished by
# running the same line again: write the records outside $OUT (emptied at every call) and copy
# them there at the end. On an H200 (2026-12-05) `one` took two 600 s calls: the first engine
# start compiled for 208 s, later ones took 53 s (1 replica) and 92 s (2) from vLLM's cache.
# Keep the host's NVLink multicast switches as they are.
set -euo pipefail
out=${1:?usage: gpu_scale_bench.sh OUT [one|fronts|two|all]}
part=${2:-all}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}

# The workload of the session-5 tables (docs/replicas-and-gpus.md), so rows compare.
if [ "${SIZE:-full}" = small ]; then
  sizes=(-n 16 --input-len 64 --output-len 16 -c 8 --repeats 1 --warmup 0)
else
  sizes=(-n 2048 --input-len 256 --output-len 128 -c 1024 --repeats "${REPEATS:-2}")
fi
common=(--phases throughput "${sizes[@]}" --ignore-eos --resume
        --env MAX_BATCH_PROMPTS=2048 --env MAX_WAITING_PROMPTS=4096)

run() {  # in the background, waited on: a TERM to this script (timeout) reaches the bench,
  # which stops its servers and exits 130; a bash killed in `cmd` leaves `cmd` running
  echo "+ $*" >&2
  [ -n "${DRY_RUN:-}" ] && return
  (cd "$here" && exec "$@") &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' TERM INT
  wait "$child"
}

bench() {  # bench NAME [args...]: one record under OUT/NAME
  local name=$1
  shift
  run "$py" -m llmserve bench "${common[@]}" --out "$out/$name" "$@"
}

if [ "$part" = one ] || [ "$part" = all ]; then
  # Offline, /predict list and concurrent at 1 and 2 replicas: one call, one machine, so
  # every ratio in the record divides by the offline row of the same run.
  CUDA_VISIBLE_DEVICES=0 bench one-gpu \
    --systems vllm-offline,predict-list,predict-concurrent --replicas 1,2
fi

if [ "$part" = fronts ] || [ "$part" = all ]; then
  # Issue #26's record: the same rows with API_SERVERS HTTP fronts (default 4), each its own
  # vLLM client of the shared engine cores, beside vllm serve through both clients (ours, and
  # vllm bench serve).
  fronts=${API_SERVERS:-4}
  CUDA_VISIBLE_DEVICES=0 bench "fronts-$fronts" --env "API_SERVERS=$fronts" \
    --env "MAX_WAITING_PROMPTS=$((2048 * fronts))" --replicas 1,2 \
    --systems vllm-offline,predict-list,predict-concurrent,vllm-serve,v1-completions,vllm-serve-bench
fi

if [ "$part" = two ] || [ "$part" = all ]; then
  # SmolLM2-135M's 9 heads do not divide by 2: TP=2 serves the zero-padded copy (12 heads,
  # same answers), and its one-GPU row is measured beside it for the scaling factor.
  padded="$out/models/smollm2-tp2"
  [ -f "$padded/config.json" ] || run "$py" -m llmserve pad-heads "$padded" --tp 2
  CUDA_VISIBLE_DEVICES=0 bench padded-one-gpu --env "MODEL_DIR=$padded" \
    --systems vllm-offline,predict-list,predict-concurrent
  bench tp2 --env "MODEL_DIR=$padded" --env TENSOR_PARALLEL_SIZE=2 \
    --systems vllm-offline,predict-list,predict-concurrent
  bench pp2 --env PIPELINE_PARALLEL_SIZE=2 --systems vllm-offline,predict-list,predict-concurrent
  # Offline vllm.LLM runs one DP rank only (settings.py): DP=2 has /predict rows.
  bench dp2 --env DATA_PARALLEL_SIZE=2 --systems predict-list,predict-concurrent
fi
echo "records: $(ls -d "$out"/*/ 2>/dev/null | tr '\n' ' ')" >&2
