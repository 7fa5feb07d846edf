"""GET /metrics: Prometheus text format (prometheus_client) with vLLM's metric names.

Every engine call is measured where the app meets the engine: each replica's engine is
wrapped in a MeteredEngine (label `engine`: the replica's index, as vLLM labels its
data-parallel engines), so /predict and /v1 both count, and so do process replicas. Names and
meanings follow vLLM's (prefix `vllm:`, label `model_name`); a request is one prompt.
`num_requests_waiting`: in the engine without a first token yet (for a stream; a batch call
counts as running from entry: its per-prompt first tokens are not reported).

Scrape: `curl -s localhost:8000/metrics | grep '^vllm:'`.

Under API_SERVERS > 1 each HTTP front counts in prometheus_client's multiprocess mode (the
supervisor gives the fronts a PROMETHEUS_MULTIPROC_DIR), and a scrape, whichever front
answers it, sums all of them (gauges: the live processes' sum).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from llmserve.engines.base import Delta, Engine, Generation, Prompt, Sampling

# vLLM's buckets (vllm/v1/metrics/loggers.py), trimmed to what a CPU serves.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0)  # fmt: skip
TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
                 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
LABELS = ("model_name", "engine")


class Metrics:
    """The app's own registry (tests build many apps in one process)."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry()
        r = self.registry
        self.running = Gauge("vllm:num_requests_running", "Requests generating now.", LABELS,
                             registry=r, multiprocess_mode="livesum")  # fmt: skip
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests in the engine without a "
                             "first token yet.", LABELS, registry=r,
                             multiprocess_mode="livesum")  # fmt: skip
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens processed.", LABELS,
                                     registry=r)  # fmt: skip
        self.generation_tokens = Counter("vllm:generation_tokens", "Tokens generated.", LABELS,
                                         registry=r)  # fmt: skip
        self.success = Counter("vllm:request_success", "Requests finished, by reason.",
                               (*LABELS, "finished_reason"), registry=r)  # fmt: skip
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token.",
                              LABELS, buckets=TTFT_BUCKETS, registry=r)  # fmt: skip
        self.itl = Histogram("vllm:inter_token_latency_seconds", "Time between tokens.",
                             LABELS, buckets=TOKEN_BUCKETS, registry=r)  # fmt: skip
        self.tpot = Histogram("vllm:request_time_per_output_token_seconds",
                              "Per request: (e2e - ttft) / (output tokens - 1).", LABELS,
                              buckets=TOKEN_BUCKETS, registry=r)  # fmt: skip
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "End-to-end latency in the "
                             "engine.", LABELS, buckets=E2E_BUCKETS, registry=r)  # fmt: skip

    def finished(self, engine: str, prompt: int, output: int, reason: str | None,
                 ttft: float | None, e2e: float) -> None:  # fmt: skip
        labels = (self.model_name, engine)
        self.prompt_tokens.labels(*labels).inc(prompt)
        self.generation_tokens.labels(*labels).inc(output)
        self.success.labels(*labels, reason or "abort").inc()
        self.e2e.labels(*labels).observe(e2e)
        if ttft is not None:
            self.ttft.labels(*labels).observe(ttft)
            if output > 1:
                self.tpot.labels(*labels).observe((e2e - ttft) / (output - 1))

    def meter(self, engine: Engine) -> Engine:
        """`engine` measured; a replicated engine's replicas each under their own label."""
        replicas = getattr(engine, "replicas", None)
        if replicas is None:
            return MeteredEngine(engine, self, "0")
        for replica in replicas:
            replica.engine = MeteredEngine(replica.engine, self, str(replica.index))
        return engine


class MeteredEngine:
    """An Engine that records each call in Metrics, otherwise its engine's self."""

    def __init__(self, engine: Engine, metrics: Metrics, label: str) -> None:
        self.engine, self.metrics, self.label = engine, metrics, label
        self.labels = (metrics.model_name, label)

    def __getattr__(self, name: str) -> Any:  # dead, unfinished, facts, shutdown, ...
        return getattr(self.engine, name)

    @property
    def dead(self) -> bool:
        return self.engine.dead

    @property
    def unfinished(self) -> int:
        return self.engine.unfinished

    def facts(self) -> dict[str, Any]:
        return self.engine.facts()

    def shutdown(self) -> None:
        self.engine.shutdown()

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        running = self.metrics.running.labels(*self.labels)
        running.inc(len(prompts))
        start = time.perf_counter()
        try:
            result = await self.engine.generate(prompts, sampling)
        finally:
            running.dec(len(prompts))
        e2e = time.perf_counter() - start
        for choice in result.choices:  # a prompt's tokens counted once, not once per choice
            prompt = choice.prompt_tokens if choice.index % result.n == 0 else 0
            self.metrics.finished(self.label, prompt, choice.completion_tokens,
                                  choice.finish_reason, result.ttft_seconds, e2e)  # fmt: skip
        return result

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        waiting = self.metrics.waiting.labels(*self.labels)
        running = self.metrics.running.labels(*self.labels)
        itl = self.metrics.itl.labels(*self.labels)
        start = last_time = time.perf_counter()
        ttft: float | None = None
        last: dict[int, Delta] = {}  # each choice's latest delta (n > 1: several)
        waiting.inc()
        gauge = waiting
        try:
            async for delta in self.engine.stream(prompt, sampling):
                now = time.perf_counter()
                if ttft is None and delta.output_tokens:
                    ttft = now - start
                    gauge.dec()
                    gauge = running
                    gauge.inc()
                elif delta.output_tokens:
                    itl.observe(now - last_time)
                last_time = now
                last[delta.index] = delta
                yield delta
        finally:
            gauge.dec()
            e2e = time.perf_counter() - start
            prompt_tokens = max((d.prompt_tokens for d in last.values()), default=0)
            for index in range(sampling.n if sampling else 1):  # the prompt counted once
                delta = last.get(index, Delta("", 0, 0))
                self.metrics.finished(self.label, 0 if index else prompt_tokens,
                                      delta.output_tokens, delta.finish_reason, ttft,
                                      e2e)  # fmt: skip


router = APIRouter()


def multiprocess() -> bool:
    """Whether prometheus_client counts across processes (PROMETHEUS_MULTIPROC_DIR was set
    when it was imported: an API_SERVERS front)."""
    return prometheus_values.ValueClass is not prometheus_values.MutexValue


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    if multiprocess():  # every front's files, not only this process's metrics
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
