"""What one benchmark run measures: systems, workload sizes, repeats, and the shared settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# Throughput rows, in the order they run and are shown. vllm-offline runs first: it is the
# reference every other row is divided by.
PREDICT_LIST = "predict-list"
PREDICT_CONCURRENT = "predict-concurrent"
VLLM_OFFLINE = "vllm-offline"
VLLM_SERVE = "vllm-serve"
TRANSFORMERS = "transformers"
SYSTEMS = (VLLM_OFFLINE, PREDICT_LIST, PREDICT_CONCURRENT, VLLM_SERVE, TRANSFORMERS)
REFERENCE = VLLM_OFFLINE

LABELS = {
    PREDICT_LIST: "/predict, one list request",
    PREDICT_CONCURRENT: "/predict, C concurrent singles",
    VLLM_OFFLINE: "vLLM offline LLM.generate",
    VLLM_SERVE: "vllm serve, C concurrent",
    TRANSFORMERS: "transformers generate, batched",
}

# The targets: (system, divided by, at least).
TARGETS = (
    (PREDICT_LIST, VLLM_OFFLINE, 0.97),
    (PREDICT_CONCURRENT, VLLM_OFFLINE, 0.90),
    (PREDICT_CONCURRENT, VLLM_SERVE, 1.0),
)

Source = Literal["synthetic", "data"]
ServeInput = Literal["text", "ids"]
PHASES = ("throughput", "latency")


@dataclass(frozen=True)
class Preset:
    num_prompts: int
    input_len: int
    output_len: int
    batch_size: int
    latency_iters: int
    eager: bool  # all vLLM systems alike; only the quick preset may skip torch.compile


# --quick fits in 10 minutes on the 2-core CPU machine with three eager engine starts.
QUICK = Preset(num_prompts=32, input_len=128, output_len=32, batch_size=1, latency_iters=5,
               eager=True)
FULL = Preset(num_prompts=512, input_len=256, output_len=128, batch_size=1, latency_iters=10,
              eager=False)


@dataclass(frozen=True)
class BenchConfig:
    systems: tuple[str, ...]
    phases: tuple[str, ...]
    source: Source
    data: Path
    num_prompts: int
    input_len: int
    output_len: int
    concurrency: int | None  # None: as many as the engine batches (min(N, MAX_NUM_SEQS))
    ignore_eos: bool
    repeats: int
    warmup: int
    batch_size: int
    latency_iters: int
    hf_batch_size: int | None  # None: the concurrency
    quick: bool
    eager: bool | None  # None: ENFORCE_EAGER from the environment
    cpu_env: bool
    out: Path
    start_timeout: float = 900.0
    extra_env: dict[str, str] = field(default_factory=dict)
    resume: bool = False  # add to the record in `out`, skipping systems measured there
    serve_input: ServeInput = "text"  # what vllm serve receives: templated text or token ids

    def settings_overrides(self) -> dict[str, Any]:
        """Settings every system shares, beyond what the environment says. Service settings
        given with --env count here too, so the systems configured from flags get them."""
        from llmserve.settings import Settings

        overrides: dict[str, Any] = {
            key.lower(): value
            for key, value in self.extra_env.items()
            if key.lower() in Settings.model_fields
        }
        overrides.update(max_new_tokens=self.output_len, ignore_eos=self.ignore_eos)
        if self.eager is not None:
            overrides["enforce_eager"] = self.eager
        return overrides

