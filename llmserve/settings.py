"""The one reader of the environment: every model, engine, sampling and server knob, typed.

Each field's name is its environment variable (case-insensitive). The fields come in groups,
one class each (GROUPS, in the order of docs/settings.md); `Settings` combines them, so
access stays flat (`settings.dtype`). Engine-specific groups live with their engine
(VllmEngineSettings in llmserve/engines/vllm/settings.py). The tables of docs/settings.md and
env_force.sh are generated from these classes (`python -m llmserve.envdoc --write`), and a
test keeps them in step, so this file is the single source of truth for names and defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmserve.engines.llamacpp.settings import LlamaCppEngineSettings
from llmserve.engines.vllm.settings import VllmEngineSettings
from llmserve.errors import SettingsError
from llmserve.shaping.settings import ShapingSettings

# The keys of llmserve.engines.ENGINES (a test keeps them equal).
EngineName = Literal["vllm", "llamacpp"]


class ModelSettings(BaseModel):
    """Model: which checkpoint to serve."""

    model_id: str | None = Field(
        None,
        description="ModelScope model id. Served from ./model/<MODEL_ID> (fetched at build "
        "time by download_model.py). Unset: the embedded SmolLM2-135M-Instruct.",
    )
    model_revision: str = Field("master", description="ModelScope revision for MODEL_ID.")
    modelscope_api_token: SecretStr | None = Field(
        None,
        description="ModelScope access token, for a private MODEL_ID and `llmserve upload` (only; "
        "the variable ModelScope's own tools read). A secret: /info shows it masked.",
    )
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

    @field_validator("cache_dir", "models_root")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()


class EngineSettings(BaseModel):
    """Engine: which implementation serves, and what holds for any engine."""

    engine: EngineName = Field(
        "vllm",
        description="The inference engine: vllm, or llamacpp (a GGUF via llama-cpp-python).",
    )
    max_model_len: int = Field(2048, gt=0, description="Prompt plus output tokens, at most.")
    engine_replicas: int = Field(
        1,
        ge=1,
        le=64,
        description="Engines behind the one API, splitting the device's memory: a request "
        "goes to the least-loaded one, a list is split across them. More than 1 pays where "
        "one engine's scheduling leaves the device idle (a small model on a GPU).",
    )
    replica_layout: Literal["process", "shared"] = Field(
        "process",
        description="Where ENGINE_REPLICAS run: process = each in a worker process of its "
        "own behind the API process (its own interpreter for output handling); shared = all "
        "in the API process. Measured on a GPU: see docs/replicas-and-gpus.md.",
    )


class SamplingSettings(BaseModel):
    """Sampling: the defaults of every request (a request may override them)."""

    max_new_tokens: int = Field(128, gt=0, description="Output tokens per prompt, at most.")
    temperature: float = Field(0.0, ge=0, description="0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int = Field(0, ge=0, description="Top-k sampling; 0 disables it.")
    repetition_penalty: float = Field(1.0, gt=0, description="1.0 disables it.")
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="0 disables it.")
    presence_penalty: float = Field(0.0, ge=-2, le=2, description="0 disables it.")
    stop_strings: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description='Stop strings: a JSON list (["\\n\\n", "Q:"]) or one plain string.',
    )
    ignore_eos: bool = Field(
        False, description="Always generate MAX_NEW_TOKENS (benchmarks use it)."
    )
    seed: int | None = Field(None, description="Sampling seed, for repeatable sampling.")

    @field_validator("stop_strings", mode="before")
    @classmethod
    def _parse_stop_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [value] if value else []
        return value


class PromptSettings(BaseModel):
    """Prompts: how a prompt becomes the model's input."""

    system_prompt: str | None = Field(
        None, description="System message put before each prompt that has none."
    )
    raw_prompt: bool = Field(
        False, description="Send prompts as they are, without the chat template."
    )


class ServerSettings(BaseModel):
    """Start-up and server."""

    warmup_data: Path | None = Field(
        None, description="A data file (jsonl) whose prompts warm the engine before it is ready."
    )
    warmup_samples: int = Field(0, ge=0, description="How many warm-up prompts to run.")
    host: str = Field("0.0.0.0", description="Address uvicorn binds (run_model.sh).")
    port: int = Field(8000, gt=0, lt=65536, description="Port uvicorn binds (run_model.sh).")
    max_batch_prompts: int = Field(
        1024, gt=0, description="Prompts one /predict list may carry; more is a 413."
    )
    # 32 MiB: MAX_BATCH_PROMPTS (1024) prompts of MAX_MODEL_LEN (2048) tokens are ~8 MiB of
    # English (~4 bytes a token) and up to ~24 MiB of CJK text JSON-escaped (a character is a
    # 6-byte \uXXXX, ~2 characters a token at worst); anything larger cannot be a servable
    # request. Checked before parsing, so a huge body costs neither memory nor parse time.
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        gt=0,
        description="Largest request body in bytes (from Content-Length, or counted as it "
        "streams); more is a 413 before the body is parsed. The default fits MAX_BATCH_PROMPTS "
        "prompts of MAX_MODEL_LEN tokens, even JSON-escaped CJK text.",
    )
    # 4096: the load test's 1000 concurrent singles plus 10 lists of 100 (2000 prompts) and
    # the judge's batch mode (lists of at most MAX_BATCH_PROMPTS) fit with room to spare, while
    # a flood is refused at once: 16x the engine's default batch (MAX_NUM_SEQS 256), so the
    # engine still has a full batch queued behind the running one at any moment.
    max_waiting_prompts: int = Field(
        4096,
        gt=0,
        description="Prompts admitted and not yet answered, over all requests (a list of 100 "
        "counts 100); a request that would go over gets a fast 503 with Retry-After.",
    )
    request_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds a /predict or /v1 request may take; past it, a 504 (an error "
        "event in a stream) and its engine work is aborted. Unset: no limit.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="When set, /v1/* (the OpenAI API) requires `Authorization: Bearer <key>`; "
        "/, /info and /predict stay open. A secret: /info shows it masked. Unset: all open.",
    )
    api_servers: int = Field(
        1,
        ge=1,
        le=64,
        description="HTTP front processes on the one port (`llmserve serve` only), all in "
        "front of the same ENGINE_REPLICAS engines, as vLLM's --api-server-count: parsing, "
        "validation and answer building spread over CPU cores. vLLM: each front runs its own "
        "client (tokenizing, detokenizing) of every engine core; llama.cpp: the fronts share "
        "engine worker processes. Each front admits MAX_WAITING_PROMPTS / API_SERVERS "
        "prompts; /metrics sums all.",
    )
    shutdown_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, seconds in-flight requests get to finish before the server "
        "exits (new connections are refused meanwhile).",
    )


# The groups in the order docs/settings.md lists them.
GROUPS: tuple[type[BaseModel], ...] = (
    ModelSettings,
    EngineSettings,
    VllmEngineSettings,
    LlamaCppEngineSettings,
    SamplingSettings,
    PromptSettings,
    ShapingSettings,
    ServerSettings,
)


class Settings(  # bases in reverse: pydantic orders fields from the last base to the first
    ServerSettings,
    ShapingSettings,
    PromptSettings,
    SamplingSettings,
    LlamaCppEngineSettings,
    VllmEngineSettings,
    EngineSettings,
    ModelSettings,
    BaseSettings,
):
    """Service settings: every group's fields, flat. Field descriptions become the settings
    tables of docs/settings.md."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    @field_validator("model_dir", "speculative_draft_model", "warmup_data", "length_router")
    @classmethod
    def _must_exist(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{str(value)!r} does not exist")
        return value

    @model_validator(mode="after")
    def _room_for_a_prompt(self) -> Settings:
        if self.max_new_tokens >= self.max_model_len:
            raise ValueError(
                f"MAX_NEW_TOKENS={self.max_new_tokens} leaves no room for a prompt in "
                f"MAX_MODEL_LEN={self.max_model_len}"
            )
        return self

    @model_validator(mode="after")
    def _lora_needs_vllm(self) -> Settings:
        if self.enable_lora and self.engine != "vllm":
            raise ValueError(
                f"ENABLE_LORA is set with ENGINE={self.engine!r}: LoRA adapters are served by "
                "ENGINE=vllm only (merge one with `llmserve finetune merge` for other engines)"
            )
        return self

    @model_validator(mode="after")
    def _room_for_a_list(self) -> Settings:
        if self.max_waiting_prompts < self.max_batch_prompts:
            raise ValueError(
                f"MAX_WAITING_PROMPTS={self.max_waiting_prompts} is below "
                f"MAX_BATCH_PROMPTS={self.max_batch_prompts}: a full list could never be admitted"
            )
        if self.front_waiting_prompts < self.max_batch_prompts:
            raise ValueError(
                f"MAX_WAITING_PROMPTS={self.max_waiting_prompts} over API_SERVERS="
                f"{self.api_servers} fronts leaves each {self.front_waiting_prompts}, below "
                f"MAX_BATCH_PROMPTS={self.max_batch_prompts}: raise MAX_WAITING_PROMPTS"
            )
        return self

    @model_validator(mode="after")
    def _fronts_need_worker_processes(self) -> Settings:
        if self.api_servers > 1 and self.replica_layout == "shared":
            raise ValueError(
                f"API_SERVERS={self.api_servers} with REPLICA_LAYOUT='shared': several HTTP "
                "fronts share engines only in worker processes (REPLICA_LAYOUT=process)"
            )
        if self.api_servers > 1 and self.engine == "vllm" and self.data_parallel_size > 1:
            raise ValueError(
                f"API_SERVERS={self.api_servers} with DATA_PARALLEL_SIZE="
                f"{self.data_parallel_size}: the fronts' shared engine cores are one per "
                "replica; use ENGINE_REPLICAS, or API_SERVERS=1 for vLLM's data parallelism"
            )
        return self

    @property
    def front_waiting_prompts(self) -> int:
        """What each of the API_SERVERS fronts admits: its share of MAX_WAITING_PROMPTS."""
        return self.max_waiting_prompts // self.api_servers

    def front_waiting_limit(self) -> str:
        """How refusals name that share: `MAX_WAITING_PROMPTS=N`, or its split over fronts."""
        if self.api_servers == 1:
            return f"MAX_WAITING_PROMPTS={self.max_waiting_prompts}"
        return (f"{self.front_waiting_prompts} (MAX_WAITING_PROMPTS={self.max_waiting_prompts}"
                f" / API_SERVERS={self.api_servers})")  # fmt: skip

    def public(self) -> dict[str, Any]:
        """The effective settings as plain JSON values; secrets (SecretStr fields, e.g.
        MODELSCOPE_API_TOKEN) show as "**********", never their value."""
        return json.loads(self.model_dump_json())


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
    """Read the environment; a bad value raises SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None


class _OneSetting(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")


def read_setting(name: str) -> Any:
    """One setting read alone from the environment, parsed by its type but without the checks
    that involve the file system or other settings; its default when unset or unparsable.

    For a tool that needs one value without validating the whole service's settings (the
    judge looks for a tokenizer in MODEL_DIR, a path that need not exist on its machine).
    """
    field = Settings.model_fields[name]
    single = create_model(f"Only_{name}", __base__=_OneSetting, **{name: (field.annotation, None)})
    try:
        value = getattr(single(), name)
    except ValidationError:
        value = None
    return field.get_default(call_default_factory=True) if value is None else value
