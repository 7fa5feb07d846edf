"""The one reader of the environment: every engine, decoding and server knob, typed.

Each field's name is its environment variable (case-insensitive). The README table and
env_force.sh are generated from this class (`python -m llmserve.settings --help`), and a test
keeps them in step, so this file is the single source of truth for names and defaults.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SpeculativeMethod = Literal["none", "ngram", "draft"]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]


class Settings(BaseSettings):
    """Service settings. Field descriptions become the README's environment table."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- model -------------------------------------------------------------------------
    model_id: str | None = Field(
        None,
        description="ModelScope model id. Served from ./model/<MODEL_ID> (fetched at build "
        "time by download_model.py). Unset: the embedded SmolLM2-135M-Instruct.",
    )
    model_revision: str = Field("master", description="ModelScope revision for MODEL_ID.")
    model_dir: Path | None = Field(
        None, description="A local HF checkpoint directory; wins over MODEL_ID."
    )
    models_root: Path = Field(
        Path("model"), description="Where download_model.py puts MODEL_ID checkpoints."
    )
    cache_dir: Path = Field(
        Path("~/.cache/llmserve"),
        validate_default=True,
        description="Where the embedded model is converted to a HF checkpoint (once).",
    )
    # --- engine ------------------------------------------------------------------------
    dtype: Dtype = Field("auto", description="Weight and activation dtype.")
    max_model_len: int = Field(2048, gt=0, description="Prompt plus output tokens, at most.")
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of device memory for weights and KV cache (on CPU: of NUMA "
        "node 0 for the KV cache). Unset: 0.9 on GPU, 0.25 on CPU.",
    )
    max_num_seqs: int = Field(256, gt=0, description="Sequences the engine batches at once.")
    max_num_batched_tokens: int | None = Field(
        None, gt=0, description="Tokens per engine step. Unset: vLLM's default."
    )
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache of shared prefixes.")
    enforce_eager: bool = Field(
        False, description="Skip torch.compile and CUDA graphs: faster start, slower decode."
    )
    tensor_parallel_size: int = Field(1, gt=0, description="GPUs to shard the model over.")
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
    # --- decoding ----------------------------------------------------------------------
    max_new_tokens: int = Field(128, gt=0, description="Output tokens per prompt, at most.")
    temperature: float = Field(0.0, ge=0, description="0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int = Field(0, ge=0, description="Top-k sampling; 0 disables it.")
    repetition_penalty: float = Field(1.0, gt=0, description="1.0 disables it.")
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="0 disables it.")
    stop_strings: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description='Stop strings: a JSON list (["\\n\\n", "Q:"]) or one plain string.',
    )
    ignore_eos: bool = Field(
        False, description="Always generate MAX_NEW_TOKENS (benchmarks use it)."
    )
    seed: int | None = Field(None, description="Sampling seed, for repeatable sampling.")
    # --- prompts -----------------------------------------------------------------------
    system_prompt: str | None = Field(None, description="System message put before each prompt.")
    raw_prompt: bool = Field(
        False, description="Send prompts as they are, without the chat template."
    )
    # --- start-up and server -----------------------------------------------------------
    warmup_data: Path | None = Field(
        None, description="A data file (jsonl) whose prompts warm the engine before it is ready."
    )
    warmup_samples: int = Field(0, ge=0, description="How many warm-up prompts to run.")
    host: str = Field("0.0.0.0", description="Address uvicorn binds (run_model.sh).")
    port: int = Field(8000, gt=0, lt=65536, description="Port uvicorn binds (run_model.sh).")
    max_batch_prompts: int = Field(
        1024, gt=0, description="Prompts one /predict list may carry; more is a 413."
    )

    @field_validator("stop_strings", mode="before")
    @classmethod
    def _parse_stop_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [value] if value else []
        return value

    @field_validator("cache_dir", "models_root")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

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

    @field_validator("model_dir", "speculative_draft_model", "warmup_data")
    @classmethod
    def _must_exist(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{str(value)!r} does not exist")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.ngram_prompt_lookup_min > self.ngram_prompt_lookup_max:
            raise ValueError(
                f"NGRAM_PROMPT_LOOKUP_MIN={self.ngram_prompt_lookup_min} is above "
                f"NGRAM_PROMPT_LOOKUP_MAX={self.ngram_prompt_lookup_max}"
            )
        if self.speculative_method == "draft" and self.speculative_draft_model is None:
            raise ValueError("SPECULATIVE_METHOD=draft needs SPECULATIVE_DRAFT_MODEL")
        if self.max_new_tokens >= self.max_model_len:
            raise ValueError(
                f"MAX_NEW_TOKENS={self.max_new_tokens} leaves no room for a prompt in "
                f"MAX_MODEL_LEN={self.max_model_len}"
            )
        return self

    def public(self) -> dict[str, Any]:
        """The effective settings as plain JSON values (nothing here is secret)."""
        return json.loads(self.model_dump_json())


def quantization_methods() -> list[str]:
    """vLLM's list of quantization methods (imported lazily: vLLM is slow to import)."""
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    return list(QUANTIZATION_METHODS)


def kv_cache_dtypes() -> list[str]:
    """vLLM's KV cache dtypes (imported lazily, like quantization_methods)."""
    from typing import get_args

    from vllm.config.cache import CacheDType

    return list(get_args(CacheDType))


def describe_error(error: ValidationError) -> str:
    """One line per bad variable, naming it and the value it had."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = "" if isinstance(value, dict) or not item["loc"] else f"={value!r}"
        lines.append(f"invalid setting {name}{shown}: {message}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; on a bad value, print what is wrong and exit 2."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        raise SystemExit(2) from None
