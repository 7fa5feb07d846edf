"""An in-process engine in its own process: vLLM's offline LLM, or transformers' generate.

Started by the benchmark as `python -m llmserve.bench.worker SPEC.json`. It loads the engine,
then listens on the spec's Unix socket (the socket appearing means "ready") and answers
requests until told to stop:
  {"op": "generate", "token_ids": [[...], ...], "max_tokens": [...]}
      -> {"seconds", "output_tokens", "per_prompt"}  (timed here, around the engine call only)
  {"op": "weights"} -> {"bytes"}
  {"op": "stop"}
Its own process keeps its memory measurable and its threads away from the benchmark's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from multiprocessing.connection import Listener
from pathlib import Path
from typing import Any, Protocol

AUTHKEY_ENV = "LLMSERVE_BENCH_AUTHKEY"


class WorkerEngine(Protocol):
    def generate(self, token_ids: list[list[int]], max_tokens: list[int]) -> dict[str, Any]: ...

    def weight_bytes(self) -> int | None: ...


class OfflineVllm:
    """vllm.LLM with the service's engine kwargs: the limit any wrapper of vLLM can reach."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from vllm import LLM

        kwargs = dict(spec["engine_kwargs"])
        # vllm.LLM refuses data_parallel_size > 1 in one process: the reference runs one rank
        # (so a DATA_PARALLEL_SIZE row's ratio is its scaling over one rank's GPUs).
        if kwargs.get("data_parallel_size", 1) > 1:
            kwargs["data_parallel_size"] = 1
        self.llm = LLM(**kwargs)
        self.sampling = spec["sampling"]
        self.model_dir = Path(spec["model_dir"])
        self.dtype = kwargs.get("dtype")

    def generate(self, token_ids: list[list[int]], max_tokens: list[int]) -> dict[str, Any]:
        from vllm import SamplingParams

        prompts = [{"prompt_token_ids": ids} for ids in token_ids]
        params = [SamplingParams(**self.sampling, max_tokens=m) for m in max_tokens]
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        per_prompt = [len(o.outputs[0].token_ids) for o in outputs]
        return {"seconds": seconds, "output_tokens": sum(per_prompt), "per_prompt": per_prompt}

    def weight_bytes(self) -> int | None:
        from llmserve.bench.memory import served_weight_bytes

        return served_weight_bytes(self.model_dir, self.dtype)


class Transformers:
    """transformers' generate over left-padded batches: the fallback the service replaces."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = spec["dtype"]
        model = AutoModelForCausalLM.from_pretrained(
            spec["model_dir"], dtype="auto" if dtype == "auto" else getattr(torch, dtype)
        )
        self.model = model.to(self.device).eval()
        tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(
            self.eos_ids)
        self.batch_size = int(spec["batch_size"])
        self.ignore_eos = bool(spec["sampling"].get("ignore_eos"))
        self.options = self._options(spec["sampling"])

    def _options(self, sampling: dict[str, Any]) -> dict[str, Any]:
        """generate() keywords equal to the service's sampling (no frequency penalty in HF)."""
        options: dict[str, Any] = {"pad_token_id": self.pad_id}
        if sampling.get("temperature", 0.0) > 0:
            options.update(do_sample=True, temperature=sampling["temperature"],
                           top_p=sampling.get("top_p", 1.0))
            if sampling.get("top_k", 0) > 0:
                options["top_k"] = sampling["top_k"]
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.get("repetition_penalty", 1.0) != 1.0:
            options["repetition_penalty"] = sampling["repetition_penalty"]
        if sampling.get("stop"):
            options["stop_strings"] = sampling["stop"]
        if sampling.get("seed") is not None:
            self.torch.manual_seed(sampling["seed"])
        return options

    def generate(self, token_ids: list[list[int]], max_tokens: list[int]) -> dict[str, Any]:
        per_prompt: list[int] = []
        start = time.perf_counter()
        for first in range(0, len(token_ids), self.batch_size):
            chunk = slice(first, first + self.batch_size)
            per_prompt.extend(self._batch(token_ids[chunk], max_tokens[chunk]))
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "output_tokens": sum(per_prompt), "per_prompt": per_prompt}

    def _batch(self, token_ids: list[list[int]], max_tokens: list[int]) -> list[int]:
        torch = self.torch
        width = max(len(ids) for ids in token_ids)
        rows = [[self.pad_id] * (width - len(ids)) + ids for ids in token_ids]
        masks = [[0] * (width - len(ids)) + [1] * len(ids) for ids in token_ids]
        new_tokens = max(max_tokens)
        extra = {"min_new_tokens": new_tokens} if self.ignore_eos else {}
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor(rows, device=self.device),
                attention_mask=torch.tensor(masks, device=self.device),
                max_new_tokens=new_tokens,
                **extra,
                **self.options,
            )
        generated = out[:, width:].tolist()  # copying to the host also waits for the device
        return [self._count(row, limit) for row, limit in zip(generated, max_tokens, strict=True)]

    def _count(self, row: list[int], limit: int) -> int:
        """Output tokens as vLLM counts them: up to and including the first EOS."""
        if not self.ignore_eos:
            for index, token in enumerate(row):
                if token in self.eos_ids:
                    return min(index + 1, limit)
        return min(len(row), limit)

    def weight_bytes(self) -> int | None:
        # parameters() lists tied weights once, as they are held once.
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


ENGINES: dict[str, type[WorkerEngine]] = {"vllm-offline": OfflineVllm, "transformers": Transformers}


def serve(engine: WorkerEngine, address: str, authkey: bytes) -> None:
    with Listener(address, family="AF_UNIX", authkey=authkey) as listener, \
            listener.accept() as conn:
        while True:
            request = conn.recv()
            op = request.get("op")
            if op == "stop":
                return
            try:
                if op == "generate":
                    reply = engine.generate(request["token_ids"], request["max_tokens"])
                elif op == "weights":
                    reply = {"bytes": engine.weight_bytes()}
                else:
                    reply = {"error": f"unknown op {op!r}"}
            except Exception as error:  # reported to the benchmark, which records it
                reply = {"error": f"{type(error).__name__}: {error}"}
            conn.send(reply)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m llmserve.bench.worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    engine = ENGINES[spec["kind"]](spec)
    print(f"worker ready: {spec['kind']}", flush=True)
    serve(engine, spec["address"], bytes.fromhex(os.environ[AUTHKEY_ENV]))
    return 0


if __name__ == "__main__":  # vLLM spawns its workers: the guard keeps them from re-running this
    raise SystemExit(main())
