"""Raw llama.cpp prefill and decode speed of the bundled SmolLM2 GGUF levels, per context
option (flash attention, ubatch), on this CPU: the measurements behind the llama.cpp engine's
defaults (llmserve/engines/llamacpp/engine.py). One JSON record with the CPU's model and flags.
`--decode-batches 1,2,4,8` measures instead one decode step of B sequences at once (one token
each, after a `--prompt`-token context), as the engine's loop runs B concurrent requests: how
the step's cost grows with B is what batching can gain.

    PYTHONPATH=. .venv/bin/python scripts/llamacpp_prefill.py [--levels Q4_1,Q4_0,Q8_0]
        [--prompt 512] [--repeats 3] [--decode-batches 1,2,4,8]
        [--out results/llamacpp-prefill-<date>.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmserve.gguf.bundled import embedded_gguf
from llmserve.harness.metadata import hardware
from llmserve.records import write_json
from llmserve.settings import load_settings
from llmserve.system import usable_cores


def decode_ms(lib: Any, ctx: Any, tokens: list[int], position: int,
              seqs: list[int] | None = None) -> float:  # fmt: skip
    """Milliseconds of one llama_decode of `tokens` at `position` in sequence 0; with `seqs`,
    token i goes to sequence seqs[i] at `position` (one token per sequence, each with logits)."""
    batch = lib.llama_batch_init(len(tokens), 0, 1)
    try:
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = position if seqs else position + i
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, seqs[i] if seqs else 0
            batch.logits[i] = bool(seqs) or i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        start = time.perf_counter()
        if lib.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return (time.perf_counter() - start) * 1e3
    finally:
        lib.llama_batch_free(batch)


def open_context(lib: Any, gguf: Path, prompt: int, ubatch: int, flash: int,
                 n_seq: int) -> tuple[Any, Any]:  # fmt: skip
    """The model and a context of n_seq sequences of prompt + 64 tokens each, a batch of
    `prompt` tokens, the usable cores as threads (as the engine)."""
    model = lib.llama_model_load_from_file(str(gguf).encode(), lib.llama_model_default_params())
    ctx_params = lib.llama_context_default_params()
    ctx_params.n_ctx, ctx_params.n_seq_max = (prompt + 64) * n_seq, n_seq
    ctx_params.n_batch, ctx_params.n_ubatch = prompt, ubatch
    ctx_params.n_threads = ctx_params.n_threads_batch = usable_cores()
    ctx_params.flash_attn_type = flash
    return model, lib.llama_init_from_model(model, ctx_params)


def measure(lib: Any, gguf: Path, flash: int, ubatch: int, prompt: int,
            repeats: int) -> dict[str, Any]:  # fmt: skip
    model, ctx = open_context(lib, gguf, prompt, ubatch, flash, n_seq=1)
    memory = lib.llama_get_memory(ctx)
    tokens = [(i * 7919) % 30000 + 100 for i in range(prompt)]
    prefill, step = [], []
    try:
        for _ in range(repeats + 1):  # the first is a warm-up
            lib.llama_memory_clear(memory, True)
            prefill.append(decode_ms(lib, ctx, tokens, 0))
            step.append(statistics.median(
                decode_ms(lib, ctx, [tokens[i]], prompt + i) for i in range(16)))
    finally:
        lib.llama_free(ctx)
        lib.llama_model_free(model)
    ms = statistics.median(prefill[1:])
    return {"flash_attn_type": flash, "ubatch": ubatch, "prefill_ms": ms,
            "prefill_tok_s": prompt / ms * 1e3, "decode_ms": statistics.median(step[1:])}


def measure_batches(lib: Any, gguf: Path, prompt: int, batches: list[int],
                    repeats: int) -> list[dict[str, Any]]:  # fmt: skip
    """Median ms of a decode step of B sequences for each B, with the engine's context options
    (flash attention auto, ubatch = batch, a KV cache of prompt + 64 per sequence)."""
    n_seq = max(batches)
    model, ctx = open_context(lib, gguf, prompt, prompt, -1, n_seq)
    memory = lib.llama_get_memory(ctx)
    tokens = [(i * 7919) % 30000 + 100 for i in range(prompt)]
    rows = []
    try:
        decode_ms(lib, ctx, tokens, 0)  # the prompt in sequence 0, copied to the others:
        for seq in range(1, n_seq):  # each its own context, as the engine's slots
            lib.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        for b in batches:
            steps = []
            for r in range(repeats * 8 + 1):  # the first is a warm-up
                steps.append(decode_ms(lib, ctx, [tokens[r % prompt]] * b, prompt + r,
                                       list(range(b))))
            for seq in range(n_seq):  # back to the prompt for the next B
                lib.llama_memory_seq_rm(memory, seq, prompt, -1)
            ms = statistics.median(steps[1:])
            rows.append({"decode_batch": b, "step_ms": ms, "ms_per_token": ms / b,
                         "tok_s": b / ms * 1e3})  # fmt: skip
    finally:
        lib.llama_free(ctx)
        lib.llama_model_free(model)
    return rows


def main() -> int:
    import llama_cpp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="Q4_1,Q4_0,Q8_0")
    parser.add_argument("--prompt", type=int, default=512, help="prompt tokens")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-batches", help="e.g. 1,2,4,8: decode steps of B sequences")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"results/llamacpp-prefill-{datetime.now(UTC):%Y%m%d-%H%M%S}.json")
    settings = load_settings()
    llama_cpp.llama_backend_init()
    record: dict[str, Any] = {"hardware": hardware(), "prompt_tokens": args.prompt,
                              "llama_cpp_python": llama_cpp.__version__, "rows": []}  # fmt: skip
    for level in args.levels.split(","):
        gguf = embedded_gguf(settings.cache_dir, level)
        if args.decode_batches:
            batches = [int(b) for b in args.decode_batches.split(",")]
            for row in measure_batches(llama_cpp, gguf, args.prompt, batches, args.repeats):
                record["rows"].append({"level": level, **row})
                write_json(out, record)
                print(json.dumps(record["rows"][-1]), flush=True)
            continue
        for flash, ubatch in itertools.product((-1, 0), (512, 256, 128)):
            row = {"level": level, **measure(llama_cpp, gguf, flash, ubatch, args.prompt,
                                             args.repeats)}  # fmt: skip
            record["rows"].append(row)
            write_json(out, record)
            print(json.dumps(row), flush=True)
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
