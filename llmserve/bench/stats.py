"""The benchmark's figures from repeats: throughput and latency runs and their summaries
(median with min and max, percentiles: harness.stats)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmserve.harness.stats import Spread, percentile


@dataclass(frozen=True)
class ThroughputRun:
    seconds: float
    output_tokens: int
    prompts: int
    cpu_seconds: float | None = None  # CPU time of the system's processes during the run
    failed: int = 0  # requests the client saw fail (vllm bench serve rows; others raise)

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_token(self) -> float | None:
        if self.cpu_seconds is None or not self.output_tokens:
            return None
        return self.cpu_seconds * 1e3 / self.output_tokens

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "output_tokens": self.output_tokens,
                "prompts": self.prompts, "tokens_per_s": self.tokens_per_s,
                "cpu_seconds": self.cpu_seconds, "cpu_ms_per_token": self.cpu_ms_per_token,
                "failed": self.failed}


def summarize_throughput(runs: Sequence[ThroughputRun]) -> dict[str, Any]:
    cpu = [r.cpu_ms_per_token for r in runs if r.cpu_ms_per_token is not None]
    return {
        "tokens_per_s": Spread.of([r.tokens_per_s for r in runs]).to_json(),
        "seconds": Spread.of([r.seconds for r in runs]).to_json(),
        "output_tokens": Spread.of([r.output_tokens for r in runs]).to_json(),
        "cpu_ms_per_token": Spread.of(cpu).to_json() if cpu else None,
        "failed": sum(r.failed for r in runs),
        "runs": [r.to_json() for r in runs],
    }


@dataclass(frozen=True)
class LatencyRun:
    """One latency iteration: a batch generating its full output, and its first token."""

    e2e_s: float
    ttft_s: float
    output_tokens: int  # of the whole batch
    batch_size: int

    @property
    def tpot_s(self) -> float:
        """Time per output token after the first, per sequence (the batch decodes together)."""
        per_sequence = self.output_tokens / self.batch_size
        if per_sequence <= 1:
            return 0.0
        return max(self.e2e_s - self.ttft_s, 0.0) / (per_sequence - 1)

    def to_json(self) -> dict[str, Any]:
        return {"e2e_s": self.e2e_s, "ttft_s": self.ttft_s, "tpot_s": self.tpot_s,
                "output_tokens": self.output_tokens, "batch_size": self.batch_size}


def summarize_latency(runs: Sequence[LatencyRun]) -> dict[str, Any]:
    e2e = [r.e2e_s for r in runs]
    return {
        "ttft_ms": Spread.of([r.ttft_s for r in runs]).scaled(1e3).to_json(),
        "tpot_ms": Spread.of([r.tpot_s for r in runs]).scaled(1e3).to_json(),
        "e2e_ms": {
            **Spread.of(e2e).scaled(1e3).to_json(),
            "p50": percentile(e2e, 50) * 1e3,
            "p99": percentile(e2e, 99) * 1e3,
        },
        "runs": [r.to_json() for r in runs],
    }

