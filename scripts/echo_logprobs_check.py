"""Acceptance figure for prompt logprobs (issue #22): for N prompts of data.jsonl, the echo
logprobs of /v1/completions (`echo: true, logprobs: 1, max_tokens: 0`, token-id prompts as
lm-eval sends them) against transformers' log-softmax over the same tokens, float32, on the
served checkpoint (the embedded SmolLM2, converted once into CACHE_DIR). Starts one server per
engine: vLLM with DTYPE=float32; llama.cpp on the F16 GGUF (LLAMACPP_EMBEDDED_LEVEL=F16,
dequantized losslessly from the bundled Q4_1, so it holds the same weights). Writes a JSON
record (default results/echo-logprobs-<date>.json; results/ is git-ignored).

    PYTHONPATH=. python scripts/echo_logprobs_check.py [--engines vllm,llamacpp] [--prompts 20]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import torch
from transformers import AutoModelForCausalLM

from llmserve.dataset import load_items
from llmserve.harness.launch import start_service
from llmserve.harness.metadata import hardware
from llmserve.model import resolve_model_dir
from llmserve.paths import DATA_JSONL
from llmserve.records import write_json
from llmserve.settings import load_settings

ENV = {"DTYPE": "float32", "ENFORCE_EAGER": "1", "MAX_MODEL_LEN": "1024", "HF_HUB_OFFLINE": "1",
       "VLLM_NO_USAGE_STATS": "1", "GPU_MEMORY_UTILIZATION": "0.2"}  # fmt: skip
ENGINE_ENV = {"vllm": {}, "llamacpp": {"ENGINE": "llamacpp", "LLAMACPP_EMBEDDED_LEVEL": "F16"}}


def prompts(count: int) -> list[str]:
    return [item.question for item in load_items(DATA_JSONL)[:count]]


def reference(model: Any, ids: list[int]) -> list[float]:
    """transformers' float32 logprob of each token after the first, given those before it."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], dim=-1)
    return logprobs.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1).tolist()


def served(url: str, ids: list[int]) -> list[float]:
    body = {"prompt": ids, "echo": True, "logprobs": 1, "max_tokens": 0, "temperature": 0}
    answer = httpx.post(url + "/v1/completions", json=body, timeout=300).raise_for_status()
    token_logprobs = answer.json()["choices"][0]["logprobs"]["token_logprobs"]
    assert token_logprobs[0] is None and len(token_logprobs) == len(ids), token_logprobs[:3]
    return [float(value) for value in token_logprobs[1:]]


def measure(engine: str, texts: list[str], model: Any, out: Path) -> dict[str, Any]:
    log = out.with_suffix(f".{engine}.log")
    service = start_service({**ENV, **ENGINE_ENV[engine]}, log_path=log)
    try:
        diffs: list[float] = []
        tokens = 0
        for text in texts:
            ids = httpx.post(service.url + "/tokenize", json={"prompt": text},
                             timeout=60).raise_for_status().json()["tokens"]  # fmt: skip
            ours, theirs = served(service.url, ids), reference(model, ids)
            diffs.extend(abs(a - b) for a, b in zip(ours, theirs, strict=True))
            tokens += len(ids)
        return {"prompts": len(texts), "tokens": tokens, "max_abs_diff": max(diffs),
                "mean_abs_diff": sum(diffs) / len(diffs)}  # fmt: skip
    finally:
        service.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="vllm,llamacpp", help="comma list: vllm, llamacpp")
    parser.add_argument("--prompts", type=int, default=20, help="prompts of data.jsonl")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    parser.add_argument("--out", type=Path, default=Path(f"results/echo-logprobs-{day}.json"))
    args = parser.parse_args()
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = sorted(set(engines) - set(ENGINE_ENV))
    if unknown:
        parser.error(f"--engines {args.engines!r}: unknown {unknown} (vllm, llamacpp)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model_dir = resolve_model_dir(load_settings())
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    texts = prompts(args.prompts)
    record: dict[str, Any] = {"date": day, "hardware": hardware(), "model_dir": str(model_dir),
                              "reference": "transformers float32 log_softmax", "engines": {}}
    for engine in engines:
        record["engines"][engine] = measure(engine, texts, model, args.out)
        write_json(args.out, record)  # after each engine: a crash keeps what was measured
        print(engine, json.dumps(record["engines"][engine]))
    print(f"record: {args.out}")


if __name__ == "__main__":
    main()
