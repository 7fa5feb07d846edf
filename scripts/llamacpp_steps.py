"""Where the llama.cpp engine's time goes under C concurrent streams: the engine itself (no
HTTP, no client), every `llama_decode` of its loop timed and sorted into pure decode steps (one
token for each of B sequences) and prompt steps (a prompt chunk, with any decode tokens). Random
token prompts, ignore_eos, greedy. One JSON record with the CPU's model and flags; each row
says how much of the run was llama_decode and how much the loop's own Python (`gap_s`).

    PYTHONPATH=. .venv/bin/python scripts/llamacpp_steps.py [--levels Q4_1,Q4_0]
        [--concurrency 1,8] [-n 16] [--input-len 128] [--output-len 64]
        [--kv-unified] [--out results/llamacpp/steps-<date>.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmserve.engines.base import Sampling, TokenIds
from llmserve.harness.metadata import hardware
from llmserve.records import write_json
from llmserve.settings import Settings


class TimedLib:
    """llama_cpp with `llama_decode` timed: (tokens, sequences, seconds, start) per call."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.steps: list[tuple[int, int, float, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lib, name)

    def llama_decode(self, ctx: Any, batch: Any) -> int:
        seqs = len({batch.seq_id[i][0] for i in range(batch.n_tokens)})
        start = time.perf_counter()
        status = int(self.lib.llama_decode(ctx, batch))
        self.steps.append((batch.n_tokens, seqs, time.perf_counter() - start, start))
        return status


def run(level: str, concurrency: int, n: int, input_len: int, output_len: int,
        kv_unified: bool) -> dict[str, Any]:  # fmt: skip
    import llama_cpp

    from llmserve.engines.llamacpp.engine import LlamaCppEngine

    default_params = llama_cpp.llama_context_default_params
    if kv_unified:  # the engine keeps llama.cpp's default (one KV stream per sequence)
        def unified() -> Any:
            params = default_params()
            params.kv_unified = True
            return params

        llama_cpp.llama_context_default_params = unified
    try:
        engine = LlamaCppEngine(Settings(engine="llamacpp", llamacpp_embedded_level=level),
                                Path("."))  # fmt: skip
    finally:
        llama_cpp.llama_context_default_params = default_params
    timed = TimedLib(engine.loop.lib)
    engine.loop.lib = timed
    rng = random.Random(0)
    prompts = [TokenIds(tuple(rng.randrange(1000, 40000) for _ in range(input_len)))
               for _ in range(n)]  # fmt: skip
    sampling = Sampling(max_tokens=output_len, temperature=0.0, ignore_eos=True)

    async def users() -> int:
        waiting, produced = list(prompts), 0

        async def user() -> None:
            nonlocal produced
            while waiting:
                async for delta in engine.stream(waiting.pop(), sampling):
                    produced += delta.output_tokens if delta.finished else 0

        await asyncio.gather(*(user() for _ in range(concurrency)))
        return produced

    began = time.perf_counter()
    try:
        produced = asyncio.run(users())
    finally:
        engine.shutdown()
    wall = time.perf_counter() - began
    steps = timed.steps
    pure = [s for s in steps if s[0] == s[1]]
    prompt = [s for s in steps if s[0] != s[1]]  # a prompt chunk, alone or beside decodes
    span = steps[-1][3] + steps[-1][2] - steps[0][3]
    by_b: dict[int, list[float]] = {}
    for _, seqs, seconds, _ in pure:
        by_b.setdefault(seqs, []).append(seconds)
    decode_ms = {b: round(1e3 * sum(v) / len(v), 1) for b, v in sorted(by_b.items())}
    return {
        "level": level, "concurrency": concurrency, "prompts": n, "input_len": input_len,
        "output_len": output_len, "kv_unified": kv_unified, "output_tokens": produced,
        "wall_s": round(wall, 3), "tok_s": round(produced / wall, 1), "steps": len(steps),
        "decode_s": round(sum(s[2] for s in steps), 3),
        "gap_s": round(span - sum(s[2] for s in steps), 3),
        "decode_step_ms_by_batch": decode_ms,
        "prompt_steps": len(prompt), "prompt_steps_s": round(sum(s[2] for s in prompt), 3),
        "prompt_step_ms": round(1e3 * sum(s[2] for s in prompt) / max(len(prompt), 1), 1),
        "prompt_step_tokens": round(sum(s[0] for s in prompt) / max(len(prompt), 1), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="Q4_1,Q4_0")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("-n", type=int, default=16, help="prompts per run")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--kv-unified", action="store_true",
                        help="one KV stream for all sequences (llama.cpp's kv_unified)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"results/llamacpp/steps-{datetime.now(UTC):%Y%m%d-%H%M%S}.json")
    record: dict[str, Any] = {"hardware": hardware(), "rows": []}
    levels, concurrencies = args.levels.split(","), args.concurrency.split(",")
    runs = [(level, int(c)) for level in levels for c in concurrencies]
    for level, concurrency in runs:
        record["rows"].append(run(level, concurrency, args.n, args.input_len, args.output_len,
                                  args.kv_unified))  # fmt: skip
        write_json(out, record)  # each row as it comes: a crash keeps the rows before it
        print(json.dumps(record["rows"][-1]), flush=True)
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
