"""The vLLM engine's settings (ENGINE=vllm): a group of the one Settings class, with the
validators that ask vLLM which quantization methods and KV cache dtypes it knows.

Only the field definitions load with the settings; vLLM is imported when a validator needs it
(QUANTIZATION or a KV_CACHE_DTYPE other than auto is set), because it is slow to import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import NoDecode

SpeculativeMethod = Literal["none", "ngram", "draft"]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]


class VllmEngineSettings(BaseModel):
    """vLLM engine (ENGINE=vllm): engine arguments of vLLM's AsyncLLM."""

    dtype: Dtype = Field(
        "auto",
        description="Weight and activation dtype. auto: the checkpoint's, except that a "
        "bf16/fp16 checkpoint runs in float32 on a CPU without native bf16 (no avx512_bf16 "
        "or amx_bf16), where bf16 measured 4-6x slower.",
    )
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of device memory for weights and KV cache (on CPU: of NUMA "
        "node 0 for the KV cache). Unset: 0.9 on GPU, 0.25 on CPU.",
    )
    max_num_seqs: int | None = Field(
        None,
        gt=0,
        description="Sequences the engine batches at once. Unset: 256 on CPU, vLLM's own on "
        "GPU (1024 offline on an H200, where 256 capped a small model).",
    )
    max_num_batched_tokens: int | None = Field(
        None, gt=0, description="Tokens per engine step. Unset: vLLM's default."
    )
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache of shared prefixes.")
    enforce_eager: bool = Field(
        False, description="Skip torch.compile and CUDA graphs: faster start, slower decode."
    )
    tensor_parallel_size: int = Field(
        1, gt=0, description="GPUs (on CPU: groups of cores) to shard the model over; its "
        "attention heads must divide by it (else `llmserve pad-heads`)."
    )
    pipeline_parallel_size: int = Field(
        1, gt=0, description="Pipeline stages (GPUs, or nodes with Ray) the layers are split "
        "over; each stage has TENSOR_PARALLEL_SIZE GPUs."
    )
    # vLLM's AsyncLLM with data_parallel_size > 1 (and no external load balancer) starts one
    # engine-core process per rank, each on its own TENSOR_PARALLEL_SIZE x
    # PIPELINE_PARALLEL_SIZE GPUs, and its client (DPLBAsyncMPClient) balances requests over
    # them in this one API process: internal load balancing, no extra servers. Ranks never
    # share a GPU (for that: ENGINE_REPLICAS). Offline vllm.LLM refuses it in one process,
    # so the benchmark's offline reference runs one rank.
    data_parallel_size: int = Field(
        1, gt=0, description="Data-parallel engine ranks, each a full copy of the model on "
        "its own GPUs, load-balanced by vLLM inside this one server."
    )
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        None,
        description="How vLLM runs its GPU workers: mp (processes on this machine) or ray "
        "(a Ray cluster: several machines, see docs/replicas-and-gpus.md). Unset: vLLM "
        "chooses (mp on one machine).",
    )
    quantization: str | None = Field(
        None,
        description="vLLM quantization method (awq, gptq, compressed-tensors, fp8, ...). "
        "Unset: read from the checkpoint's config.",
    )
    load_format: str = Field("auto", description="vLLM load format (auto, safetensors, ...).")
    kv_cache_dtype: str = Field("auto", description="KV cache dtype (auto, fp8, fp8_e5m2, ...).")
    speculative_method: SpeculativeMethod = Field(
        "none", description="Speculative decoding: none, ngram (prompt lookup) or draft."
    )
    num_speculative_tokens: int = Field(4, gt=0, description="Tokens proposed per step.")
    ngram_prompt_lookup_min: int = Field(2, gt=0, description="Smallest n-gram to match.")
    ngram_prompt_lookup_max: int = Field(4, gt=0, description="Largest n-gram to match.")
    speculative_draft_model: Path | None = Field(
        None, description="Draft model directory, for SPECULATIVE_METHOD=draft."
    )
    enable_lora: bool = Field(
        False, description="Serve LoRA adapters (LORA_MODULES) on top of the base model."
    )
    max_lora_rank: int = Field(
        16, gt=0, description="Largest LoRA rank served (vLLM sizes its buffers by it)."
    )
    max_loras: int = Field(1, gt=0, description="LoRA adapters in one batch at once.")
    lora_modules: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict,
        description="Adapters to serve: name=path pairs separated by commas (or a JSON "
        "object) "
        "(`llmserve finetune` writes OUTPUT/adapter). /v1 requests pick one by `model`.",
    )
    lora_default: str | None = Field(
        None,
        description="The adapter (a LORA_MODULES name) that /predict uses; unset: the base "
        "model.",
    )

    @field_validator("quantization", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", "none", "None") else value

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, value: str | None) -> str | None:
        if value is None:
            return None
        known = quantization_methods()
        if value not in known:
            raise ValueError(f"unknown quantization {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("kv_cache_dtype")
    @classmethod
    def _known_kv_cache_dtype(cls, value: str) -> str:
        known = kv_cache_dtypes() if value != "auto" else ["auto"]
        if value not in known:
            raise ValueError(f"unknown KV cache dtype {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("lora_modules", mode="before")
    @classmethod
    def _parse_lora_modules(cls, value: Any) -> Any:
        """Parse "a=/adapters/a,b=/adapters/b" (or take a mapping, from code)."""
        if not isinstance(value, str):
            return value
        if value.strip().startswith("{"):  # JSON, as env_force.sh writes the default
            return json.loads(value)
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, path = part.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise ValueError(f"LORA_MODULES entry {part!r} is not name=path")
            pairs[name.strip()] = path.strip()
        return pairs

    @model_validator(mode="after")
    def _consistent_lora(self) -> VllmEngineSettings:
        if self.lora_modules and not self.enable_lora:
            raise ValueError("LORA_MODULES is set but ENABLE_LORA is not")
        for name, path in self.lora_modules.items():
            if not (path / "adapter_config.json").is_file():
                raise ValueError(
                    f"LORA_MODULES adapter {name}={str(path)!r} has no adapter_config.json"
                )
        if self.lora_default is not None and self.lora_default not in self.lora_modules:
            raise ValueError(
                f"LORA_DEFAULT={self.lora_default!r} is not a LORA_MODULES name "
                f"(known: {sorted(self.lora_modules)})"
            )
        return self

    @model_validator(mode="after")
    def _consistent_speculation(self) -> VllmEngineSettings:
        if self.ngram_prompt_lookup_min > self.ngram_prompt_lookup_max:
            raise ValueError(
                f"NGRAM_PROMPT_LOOKUP_MIN={self.ngram_prompt_lookup_min} is above "
                f"NGRAM_PROMPT_LOOKUP_MAX={self.ngram_prompt_lookup_max}"
            )
        if self.speculative_method == "draft" and self.speculative_draft_model is None:
            raise ValueError("SPECULATIVE_METHOD=draft needs SPECULATIVE_DRAFT_MODEL")
        return self


def quantization_methods() -> list[str]:
    """vLLM's list of quantization methods (imported lazily: vLLM is slow to import)."""
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    return list(QUANTIZATION_METHODS)


def kv_cache_dtypes() -> list[str]:
    """vLLM's KV cache dtypes (imported lazily, like quantization_methods)."""
    from typing import get_args

    from vllm.config.cache import CacheDType

    return list(get_args(CacheDType))
