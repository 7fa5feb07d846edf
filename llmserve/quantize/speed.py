"""TTFT, TPOT and throughput of a running /predict, with the benchmark package's functions.

The calls, the TTFT rule (engine TTFT plus the time spent outside the engine) and the
summaries are llmserve.bench's; this module only picks the prompts and the repeats for a
quick per-variant figure. Each repeat gets prompts of its own, so the prefix cache never
serves one it has seen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from llmserve.bench.client import async_client, predict
from llmserve.bench.stats import (
    LatencyRun,
    ThroughputRun,
    summarize_latency,
    summarize_throughput,
)


@dataclass(frozen=True)
class SpeedPlan:
    questions: list[str]  # user texts to draw prompts from (data.jsonl's test questions)
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
    async with async_client(url, 1) as client:
        latency: list[LatencyRun] = []
        for index in range(1 + plan.latency_runs):
            reply = await predict(client, plan.take(cursor, 1)[0])
            cursor += 1
            if reply.engine_ttft is None or reply.engine_seconds is None:
                raise RuntimeError("/predict sent no X-Engine-TTFT / X-Engine-Seconds header")
            # As llmserve.bench's Service.latency: /predict does not stream, so its TTFT is
            # the engine's plus all time outside the engine (an upper bound).
            ttft = reply.engine_ttft + max(reply.seconds - reply.engine_seconds, 0.0)
            if index:  # the first one is the warm-up
                latency.append(LatencyRun(reply.seconds, ttft, reply.output_tokens, 1))
        throughput: list[ThroughputRun] = []
        for index in range(1 + plan.throughput_runs):
            prompts = plan.take(cursor, plan.batch_size)
            cursor += plan.batch_size
            reply = await predict(client, prompts)
            if index:
                throughput.append(ThroughputRun(reply.seconds, reply.output_tokens, len(prompts)))
    lat = summarize_latency(latency)
    thr = summarize_throughput(throughput)
    return {
        "ttft_s": lat["ttft_ms"]["median"] / 1e3,
        "tpot_s": lat["tpot_ms"]["median"] / 1e3,
        "tokens_per_s": thr["tokens_per_s"]["median"],
        "latency": lat,
        "throughput": thr,
    }
