"""vLLM's arguments from our settings: engine keywords, speculative config and sampling
keywords (the device they are for: engines/vllm/device.py).

`engine_kwargs()` and `sampling_kwargs()` are shared with the benchmark, so that offline
`LLM.generate`, `vllm serve` and this service run with the same engine and sampling settings.
vLLM is imported inside the functions that need it (it takes seconds to import).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmserve.engines.vllm.capabilities import DtypeChoice, choose_dtype, read_config
from llmserve.engines.vllm.device import device_type, is_cpu_build
from llmserve.system import cpu_flags

if TYPE_CHECKING:
    from llmserve.engines.base import Sampling
    from llmserve.settings import Settings

CPU_DEFAULT_MEMORY_UTILIZATION = 0.25  # of NUMA node 0; vLLM's 0.9 does not fit beside the OS
GPU_DEFAULT_MEMORY_UTILIZATION = 0.9
# MAX_NUM_SEQS unset: 256 on CPU (the default every CPU figure here was measured with); on a
# GPU vLLM picks its own (1024 offline on an H200, issue #13), which 256 capped.
CPU_DEFAULT_MAX_NUM_SEQS = 256


def dtype_choice(settings: Settings, model_dir: Path, on_cpu: bool | None = None) -> DtypeChoice:
    """DTYPE resolved for this CPU (capabilities.choose_dtype): with auto, a bf16/fp16
    checkpoint runs in bf16 only where the CPU has avx512_bf16 or amx_bf16, float32 elsewhere
    (4-6x faster than bf16 on an AVX2-only AMD EPYC; figures in capabilities' docstring)."""
    if on_cpu is None:
        on_cpu = is_cpu_build()
    return choose_dtype(settings.dtype, read_config(model_dir), cpu_flags(), on_cpu,
                        settings.quantization)


def engine_kwargs(settings: Settings, model_dir: Path) -> dict[str, Any]:
    """Keyword arguments for vllm.LLM / AsyncEngineArgs, identical for every system we run.
    "dtype" is DTYPE resolved for this CPU (dtype_choice), so records show what ran."""
    on_cpu = device_type() == "cpu"
    utilization = settings.gpu_memory_utilization
    if utilization is None:
        utilization = CPU_DEFAULT_MEMORY_UTILIZATION if on_cpu else GPU_DEFAULT_MEMORY_UTILIZATION
    # ENGINE_REPLICAS engines share the device: each takes its part of the fraction.
    utilization /= settings.engine_replicas
    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "dtype": dtype_choice(settings, model_dir, on_cpu).dtype,
        "max_model_len": settings.max_model_len,
        "gpu_memory_utilization": utilization,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "enforce_eager": settings.enforce_eager,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        # AsyncLLM: one engine core per rank, balanced by vLLM (settings.py says more).
        "data_parallel_size": settings.data_parallel_size,
        "distributed_executor_backend": settings.distributed_executor_backend,
        "quantization": settings.quantization,
        "load_format": settings.load_format,
        "kv_cache_dtype": settings.kv_cache_dtype,
        "speculative_config": speculative_config(settings),
    }
    max_num_seqs = settings.max_num_seqs or (CPU_DEFAULT_MAX_NUM_SEQS if on_cpu else None)
    if max_num_seqs is not None:
        kwargs["max_num_seqs"] = max_num_seqs
    if settings.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = settings.max_num_batched_tokens
    if settings.seed is not None:
        kwargs["seed"] = settings.seed
    if settings.enable_lora:
        kwargs["enable_lora"] = True
        kwargs["max_lora_rank"] = settings.max_lora_rank
        kwargs["max_loras"] = settings.max_loras
    return kwargs


def lora_request(settings: Settings, adapter: str | None) -> Any:
    """vLLM's LoRARequest for a LORA_MODULES name (None: the base model). Its id is the
    name's place in LORA_MODULES (vLLM wants a stable id > 0 per adapter)."""
    if adapter is None:
        return None
    from vllm.lora.request import LoRARequest

    names = list(settings.lora_modules)
    if adapter not in names:
        raise KeyError(f"adapter {adapter!r} is not in LORA_MODULES ({names})")
    path = settings.lora_modules[adapter]
    return LoRARequest(adapter, names.index(adapter) + 1, str(path))


def speculative_config(settings: Settings) -> dict[str, Any] | None:
    if settings.speculative_method == "ngram":
        return {
            "method": "ngram",
            "num_speculative_tokens": settings.num_speculative_tokens,
            "prompt_lookup_min": settings.ngram_prompt_lookup_min,
            "prompt_lookup_max": settings.ngram_prompt_lookup_max,
        }
    if settings.speculative_method == "draft":
        return {
            "method": "draft_model",
            "model": str(settings.speculative_draft_model),
            "num_speculative_tokens": settings.num_speculative_tokens,
        }
    return None


def sampling_kwargs(sampling: Sampling) -> dict[str, Any]:
    """SamplingParams keywords (without max_tokens, which depends on the prompt's length).
    n > 1: vLLM V1's parallel sampling (one child request per choice, seeded seed + i)."""
    return {
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "repetition_penalty": sampling.repetition_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "presence_penalty": sampling.presence_penalty,
        "stop": list(sampling.stop) or None,
        "ignore_eos": sampling.ignore_eos,
        "seed": sampling.seed,
        "logprobs": sampling.logprobs,
        "prompt_logprobs": sampling.prompt_logprobs,
    }
