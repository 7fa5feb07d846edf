"""A quick engine-level speed check (until the benchmark has a llama.cpp system): batch-1 TPOT
and output tokens/s of C concurrent single requests, for the engine ENGINE picks.

    ENGINE=llamacpp python -m llmserve.engines.llamacpp.measure [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from llmserve.engines import load_engine_factory
from llmserve.engines.base import Engine, Sampling
from llmserve.model import resolve_model_dir
from llmserve.settings import Settings

PROMPT = "Write a short story about a robot who learns to paint."


async def batch1_tpot(engine: Engine, tokens: int) -> float:
    """Seconds per output token after the first, one request alone."""
    stamps: list[float] = []
    async for delta in engine.stream(PROMPT, Sampling(max_tokens=tokens, ignore_eos=True)):
        stamps.append(time.perf_counter())
        last = delta
    return (stamps[-1] - stamps[0]) / max(last.output_tokens - 1, 1)


async def concurrent_rate(engine: Engine, concurrency: int, tokens: int) -> float:
    """Output tokens per second of `concurrency` single requests sent at once."""
    sampling = Sampling(max_tokens=tokens, ignore_eos=True)
    start = time.perf_counter()
    done = await asyncio.gather(
        *(engine.generate([f"{PROMPT} ({i})"], sampling) for i in range(concurrency))
    )
    return sum(g.output_tokens for g in done) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per request")
    args = parser.parse_args()
    settings = Settings()
    engine = load_engine_factory(settings.engine)(settings, resolve_model_dir(settings))
    try:
        asyncio.run(batch1_tpot(engine, 8))  # warm-up
        tpot = asyncio.run(batch1_tpot(engine, args.tokens))
        rate = asyncio.run(concurrent_rate(engine, args.concurrency, args.tokens))
    finally:
        engine.shutdown()
    result = {
        "engine": settings.engine,
        "batch1_tpot_ms": round(tpot * 1000, 2),
        f"tokens_per_s_c{args.concurrency}": round(rate, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
