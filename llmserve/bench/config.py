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
# The same /predict service started with ENGINE=llamacpp (MODEL_GGUF from the environment).
LLAMACPP_LIST = "llamacpp-predict-list"
LLAMACPP_CONCURRENT = "llamacpp-concurrent"
# vLLM's own serving client (`vllm bench serve`) against this service's /v1/completions and
# against vllm serve, in the same run (llmserve.bench.vllm_bench_serve).
V1_COMPLETIONS = "v1-completions"
VLLM_SERVE_BENCH = "vllm-serve-bench"
LLAMACPP_V1 = "llamacpp-v1-completions"  # the same client against the llama.cpp engine's /v1
SYSTEMS = (VLLM_OFFLINE, PREDICT_LIST, PREDICT_CONCURRENT, VLLM_SERVE, TRANSFORMERS,
           LLAMACPP_LIST, LLAMACPP_CONCURRENT, V1_COMPLETIONS, VLLM_SERVE_BENCH, LLAMACPP_V1)
# Opt-in: the llama.cpp rows (they need llama-cpp-python, requirements-llamacpp.txt) and the
# vllm bench serve pair (a second client over systems the default rows already measure).
OPT_IN = (LLAMACPP_LIST, LLAMACPP_CONCURRENT, V1_COMPLETIONS, VLLM_SERVE_BENCH, LLAMACPP_V1)
DEFAULT_SYSTEMS = tuple(s for s in SYSTEMS if s not in OPT_IN)
REFERENCE = VLLM_OFFLINE

LABELS = {
    PREDICT_LIST: "/predict, one list request",
    PREDICT_CONCURRENT: "/predict, C concurrent singles",
    VLLM_OFFLINE: "vLLM offline LLM.generate",
    VLLM_SERVE: "vllm serve, C concurrent",
    TRANSFORMERS: "transformers generate, batched",
    LLAMACPP_LIST: "/predict on llama.cpp, one list request",
    LLAMACPP_CONCURRENT: "/predict on llama.cpp, C concurrent singles",
    V1_COMPLETIONS: "/v1/completions, vllm bench serve, C concurrent",
    VLLM_SERVE_BENCH: "vllm serve, vllm bench serve, C concurrent",
    LLAMACPP_V1: "/v1/completions on llama.cpp, vllm bench serve, C concurrent",
}

# A replica sweep (--replicas 1,2) measures the /predict rows once per ENGINE_REPLICAS count:
# one replica keeps the plain row names (the targets below are theirs), N > 1 adds "@N".
REPLICA_MARK = "@"


def replica_row(row: str, replicas: int) -> str:
    """The row name of `row` measured with `replicas` engines."""
    return row if replicas == 1 else f"{row}{REPLICA_MARK}{replicas}"


def base_row(row: str) -> str:
    """The system row a (possibly replica-swept) row name measures."""
    return row.split(REPLICA_MARK, 1)[0]


def row_replicas(row: str) -> int | None:
    """The replica count in a swept row's name (None: not swept)."""
    _, mark, count = row.partition(REPLICA_MARK)
    return int(count) if mark and count.isdigit() else None


def label(row: str) -> str:
    """The row's description, with its replica count when swept."""
    text = LABELS.get(base_row(row), row)
    replicas = row_replicas(row)
    return text if replicas is None else f"{text}, {replicas} engine replicas"


# The targets (issue #26's for a GPU): (system, divided by, at least). A row the run did not
# measure (the @2 rows need --replicas 2) is left out of the table.
TARGETS = (
    (PREDICT_LIST, VLLM_OFFLINE, 0.97),
    (PREDICT_CONCURRENT, VLLM_OFFLINE, 0.95),
    (PREDICT_CONCURRENT, VLLM_SERVE, 1.0),
    (f"{PREDICT_LIST}{REPLICA_MARK}2", VLLM_OFFLINE, 1.8),
    (f"{PREDICT_CONCURRENT}{REPLICA_MARK}2", VLLM_OFFLINE, 1.8),
    (V1_COMPLETIONS, VLLM_SERVE_BENCH, 1.0),
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
    # ENGINE_REPLICAS counts the /predict rows are measured with, one service start each
    # (empty: one start, with the environment's ENGINE_REPLICAS). The other systems run one
    # engine: the reference stays the single-engine offline row.
    replicas: tuple[int, ...] = ()

    def settings_overrides(self) -> dict[str, Any]:
        """Settings every system shares, beyond what the environment says. Service settings
        given with --env count here too, so the systems configured from flags get them."""
        from llmserve.settings import Settings, read_setting

        overrides: dict[str, Any] = {
            key.lower(): value
            for key, value in self.extra_env.items()
            if key.lower() in Settings.model_fields
        }
        overrides.update(max_new_tokens=self.output_len, ignore_eos=self.ignore_eos)
        # predict-list sends all N prompts in one request: room for them (an H200 run with
        # N=2048 got the 413 of the default MAX_BATCH_PROMPTS=1024).
        for name in ("max_batch_prompts", "max_waiting_prompts"):
            current = overrides.get(name, read_setting(name))
            overrides[name] = max(int(current), self.num_prompts)
        if self.eager is not None:
            overrides["enforce_eager"] = self.eager
        if self.replicas:  # the sweep sets each service's count; the rest run one engine
            overrides["engine_replicas"] = 1
        return overrides

