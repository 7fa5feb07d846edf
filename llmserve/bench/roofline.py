"""The CPU's limits, measured once per record, and each row's fraction of the one that binds.

On a CPU, decoding reads every weight once per step (all sequences of the batch share that
read), so a step takes at least weight bytes / memory bandwidth; prefill multiplies every
prompt token through every weight, at least 2 x parameters FLOPs a token. A row's limit is
the time those two floors add up to for its workload, and its fraction is measured tok/s over
the limit's (1.0: at the wall). Attention, the KV cache and sampling are left out, so the
limit is optimistic and fractions are upper bounds of what is left to win.

- bandwidth: a STREAM-like triad (a = b + s*c, one fused torch kernel over three arrays far
  larger than the caches; 3 x 4 bytes an element moved), the best of several passes;
- GEMM FLOP/s: torch float32 matmul, the best of several; also bfloat16 where the CPU has
  native bf16 (avx512_bf16/amx), which is what vLLM's bf16 runs on there.
"""

from __future__ import annotations

import time
from typing import Any

from llmserve.bench.config import base_row, row_replicas

TRIAD_ELEMENTS = 1 << 25  # 128 MiB float32 per array: 384 MiB, far beyond any L3 cache
GEMM_SIZE = 2048
PASSES = 5


def _best_seconds(work: Any, passes: int = PASSES) -> float:
    work()  # warm: page faults, thread-pool start
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def triad_bytes_per_s() -> float:
    import torch

    b = torch.full((TRIAD_ELEMENTS,), 1.0)
    c = torch.full((TRIAD_ELEMENTS,), 2.0)
    a = torch.empty(TRIAD_ELEMENTS)
    seconds = _best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a))
    return 3 * 4 * TRIAD_ELEMENTS / seconds


def gemm_flop_per_s(dtype_name: str = "float32") -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    x = torch.rand(GEMM_SIZE, GEMM_SIZE).to(dtype)
    y = torch.rand(GEMM_SIZE, GEMM_SIZE).to(dtype)
    seconds = _best_seconds(lambda: torch.mm(x, y))
    return 2 * GEMM_SIZE**3 / seconds


def measure_machine(cpu_flags: list[str]) -> dict[str, Any]:
    """The record's `roofline` facts for this CPU (GB/s and GFLOP/s)."""
    import torch

    gemm = {"float32": gemm_flop_per_s("float32") / 1e9}
    if {"avx512_bf16", "amx_bf16"} & set(cpu_flags):
        gemm["bfloat16"] = gemm_flop_per_s("bfloat16") / 1e9
    return {
        "triad_gb_s": triad_bytes_per_s() / 1e9,
        "gemm_gflop_s": gemm,
        "torch_threads": torch.get_num_threads(),
        "method": f"triad over {TRIAD_ELEMENTS} float32 elements and {GEMM_SIZE}^3 matmul, "
                  f"best of {PASSES} (torch)",
    }


def _flop_per_s(machine: dict[str, Any], dtype: str | None) -> float:
    gemm = machine["gemm_gflop_s"]
    return float(gemm.get(dtype or "float32", gemm["float32"])) * 1e9


def throughput_limit(machine: dict[str, Any], weight_bytes: float, params: float,
                     work: dict[str, Any], dtype: str | None) -> dict[str, Any]:
    """Output tok/s a throughput run cannot exceed, and which floor is the larger part.

    `work`: num_prompts N, prompt tokens per prompt I, output tokens per prompt O,
    concurrency C: N*I prompt tokens at 2*params FLOPs each, and N*O/C decode steps (C
    sequences a step) each reading the weights once."""
    prompts = work["num_prompts"]
    concurrency = max(1, min(work["concurrency"], prompts))
    prompt_tokens = prompts * work["prompt_tokens"]
    output_tokens = prompts * work["output_len"]
    prefill = 2 * params * prompt_tokens / _flop_per_s(machine, dtype)
    decode = output_tokens / concurrency * weight_bytes / (machine["triad_gb_s"] * 1e9)
    return {"tokens_per_s": output_tokens / (prefill + decode),
            "binds": "bandwidth" if decode >= prefill else "compute"}


def latency_floors(machine: dict[str, Any], weight_bytes: float, params: float,
                   batch: int, input_len: int, dtype: str | None) -> dict[str, float]:
    """The least TTFT (a batch's prefill, compute-bound) and TPOT (one read of the weights
    a step) in ms."""
    ttft = 2 * params * batch * input_len / _flop_per_s(machine, dtype)
    tpot = weight_bytes / (machine["triad_gb_s"] * 1e9)
    return {"ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3}


# Rows that put all N prompts into the engine at once (the rest keep C in flight).
WHOLE_BATCH_ROWS = ("predict-list", "vllm-offline", "llamacpp-predict-list", "transformers")


def _compute_dtype(data: dict[str, Any], system: str) -> str | None:
    """float32's GEMM rate stands for llama.cpp's quantized kernels (no torch rate of theirs)."""
    return None if system.startswith("llamacpp") else data.get("engine_kwargs", {}).get("dtype")


def record_limits(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each throughput row of a bench record with roofline facts: its limit tok/s, the
    fraction of it measured, and what binds. Rows whose system lacks weights are left out."""
    machine, params = data.get("roofline"), data.get("model_params")
    if not machine or not params:
        return {}
    work = data["workload"]["throughput"]
    prompt_tokens = work.get("input_len") or work.get("mean_prompt_tokens") or 0
    limits = {}
    for row, entry in data["throughput"].items():
        system = data["systems"].get(entry.get("system", ""), {})
        if not system.get("weights_mb"):
            continue
        # Each replica reads its own copy of the weights every step.
        replicas = row_replicas(row) or system.get("engine_replicas") or 1
        in_flight = (work["num_prompts"] if base_row(row) in WHOLE_BATCH_ROWS
                     else work["concurrency"])  # fmt: skip
        batch = min(in_flight, system.get("batch_limit") or in_flight)
        limit = throughput_limit(
            machine, system["weights_mb"] * 2**20 * replicas, params,
            {"num_prompts": work["num_prompts"], "prompt_tokens": prompt_tokens,
             "output_len": work["output_len"], "concurrency": batch},
            _compute_dtype(data, entry["system"]),
        )  # fmt: skip
        limits[row] = {**limit, "fraction": entry["tokens_per_s"]["median"] / limit["tokens_per_s"]}
    return limits


def record_latency_floors(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """For each latency row: its TTFT and TPOT floors (ms) and the fractions measured."""
    machine, params = data.get("roofline"), data.get("model_params")
    if not machine or not params:
        return {}
    work = data["workload"]["latency"]
    floors = {}
    for name, entry in data["latency"].items():
        weights = data["systems"].get(name, {}).get("weights_mb")
        if not weights:
            continue
        floor = latency_floors(machine, weights * 2**20, params, work["batch_size"],
                               work["input_len"], _compute_dtype(data, name))  # fmt: skip
        floors[name] = {**floor,
                        "ttft_fraction": floor["ttft_ms"] / entry["ttft_ms"]["median"],
                        "tpot_fraction": floor["tpot_ms"] / entry["tpot_ms"]["median"]}  # fmt: skip
    return floors
