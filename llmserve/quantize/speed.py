"""TTFT, TPOT and throughput of a running /predict, for a quick per-variant figure.

The calls and the TTFT rule (engine TTFT plus the time spent outside the engine) are
llmserve.harness.client's, the summaries llmserve.bench's; this module only picks the prompts
and the repeats. Each repeat gets prompts of its own, so the prefix cache never serves one it
has seen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from llmserve.bench.stats import (
    LatencyRun,
    ThroughputRun,
    summarize_latency,
    summarize_throughput,
)
from llmserve.harness.client import ServiceClient


@dataclass(frozen=True)
class SpeedPlan:
    questions: list[str]  # user texts to draw prompts from (data.jsonl's tune questions)
    latency_runs: int = 4  # single-prompt requests (after one warm-up)
    batch_size: int = 32  # prompts in one throughput request
    throughput_runs: int = 2  # list requests (after one warm-up)

    def take(self, start: int, count: int) -> list[str]:
        return [self.questions[(start + i) % len(self.questions)] for i in range(count)]


def measure_speed(url: str, plan: SpeedPlan) -> dict[str, Any]:
    """{"ttft_s", "tpot_s", "tokens_per_s", "latency": ..., "throughput": ...} for one server."""
    return asyncio.run(_measure(url, plan))


async def _measure(url: str, plan: SpeedPlan) -> dict[str, Any]:
    cursor = 0
    # No retries: a repeated request would be timed twice. A whole list request on a slow CPU
    # takes minutes, hence the timeout.
    async with ServiceClient(url, timeout=3600.0, retries=0, tool="quantize") as client:
        latency: list[LatencyRun] = []
        for index in range(1 + plan.latency_runs):
            reply = await client.predict(plan.take(cursor, 1)[0])
            cursor += 1
            if index:  # the first one is the warm-up
                latency.append(LatencyRun(reply.latency_s, reply.ttft_s, reply.output_tokens, 1))
        throughput: list[ThroughputRun] = []
        for index in range(1 + plan.throughput_runs):
            prompts = plan.take(cursor, plan.batch_size)
            cursor += plan.batch_size
            reply = await client.predict(prompts)
            if index:
                throughput.append(
                    ThroughputRun(reply.latency_s, reply.output_tokens, len(prompts)))
    lat = summarize_latency(latency)
    thr = summarize_throughput(throughput)
    return {
        "ttft_s": lat["ttft_ms"]["median"] / 1e3,
        "tpot_s": lat["tpot_ms"]["median"] / 1e3,
        "tokens_per_s": thr["tokens_per_s"]["median"],
        "latency": lat,
        "throughput": thr,
    }
