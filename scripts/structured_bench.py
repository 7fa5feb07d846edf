"""Acceptance figures for structured outputs (issue #23), on each engine:
200 chat requests over 3 JSON schemas (a nested object, an enum, an array), each answer
parsed and validated with jsonschema; then output tok/s of the same requests with and without
the schema. Starts one server per engine (the test settings of tests/conftest.py, float32)
and writes a JSON record (default results/structured-<date>.json; results/ is git-ignored).

    PYTHONPATH=. python scripts/structured_bench.py [--engines vllm,llamacpp] [--requests 200]
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from llmserve.harness.launch import start_service
from llmserve.harness.metadata import hardware

NESTED = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "address": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 24},
            "zip": {"type": "integer", "minimum": 0, "maximum": 99999}},
            "required": ["city", "zip"]},
    },
    "required": ["name", "address"],
}  # fmt: skip
ENUM = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]},
                   "score": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["sentiment", "score"],
}  # fmt: skip
ARRAY = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 16},
                             "minItems": 1, "maxItems": 4}},
    "required": ["items"],
}  # fmt: skip
SCHEMAS = {"nested": NESTED, "enum": ENUM, "array": ARRAY}
TOPICS = ["Paris", "a rainy day", "the moon", "coffee", "a bicycle", "Tokyo", "winter",
          "a library", "the ocean", "a concert"]  # fmt: skip
ASKS = {"nested": "Give a person who lives in {} as JSON with name and address.",
        "enum": "Rate the feeling of {} as JSON.",
        "array": "List things related to {} as JSON."}  # fmt: skip
ENV = {"DTYPE": "float32", "ENFORCE_EAGER": "1", "MAX_MODEL_LEN": "1024", "MAX_NEW_TOKENS": "128",
       "MAX_BATCH_PROMPTS": "64", "GPU_MEMORY_UTILIZATION": "0.2", "HF_HUB_OFFLINE": "1",
       "VLLM_NO_USAGE_STATS": "1"}  # fmt: skip
ENGINE_ENV = {"vllm": {}, "llamacpp": {"ENGINE": "llamacpp", "LLAMACPP_PARALLEL": "8"}}


def requests_for(count: int) -> list[tuple[str, str]]:
    kinds = list(SCHEMAS)
    return [(kinds[i % 3], ASKS[kinds[i % 3]].format(TOPICS[(i // 3) % len(TOPICS)]))
            for i in range(count)]  # fmt: skip


# Output tokens per answer. At 128, the answers that failed validation were cut there
# (finish_reason "length": e.g. a katakana string of many tokens, 2026-12-07, 1 of 30 on
# vLLM), not off-schema; 512 leaves the grammar room to close.
MAX_TOKENS = 512


def ask(http: httpx.Client, kind: str, text: str, constrained: bool,
        max_tokens: int = MAX_TOKENS) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}],
                            "max_tokens": max_tokens}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": kind, "schema": SCHEMAS[kind], "strict": True}}  # fmt: skip
    response = http.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    return dict(response.json())


def run(url: str, work: list[tuple[str, str]], constrained: bool, concurrency: int,
        max_tokens: int = MAX_TOKENS) -> tuple[list[dict[str, Any]], float]:  # fmt: skip
    with httpx.Client(base_url=url, timeout=900) as http, ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        answers = list(pool.map(lambda w: ask(http, w[0], w[1], constrained, max_tokens),
                                work))
        return answers, time.perf_counter() - start


def validity(work: list[tuple[str, str]], answers: list[dict[str, Any]]) -> dict[str, Any]:
    valid, cut, failures = 0, 0, []
    for (kind, _), answer in zip(work, answers, strict=True):
        choice = answer["choices"][0]
        text = choice["message"]["content"]
        cut += choice["finish_reason"] == "length"
        try:
            jsonschema.validate(json.loads(text), SCHEMAS[kind])
            valid += 1
        except (ValueError, jsonschema.ValidationError) as error:
            failures.append({"kind": kind, "finish_reason": choice["finish_reason"],
                             "tokens": answer["usage"]["completion_tokens"],
                             "text": text[:200], "error": str(error)[:200]})  # fmt: skip
    # Every failure counted by schema and the first line of its error; five shown whole.
    reasons = collections.Counter(f"{f['kind']}: {f['error'].splitlines()[0]}" for f in failures)
    return {"requests": len(answers), "valid": valid, "cut_at_max_tokens": cut,
            "failure_reasons": dict(reasons.most_common()), "failures": failures[:5]}  # fmt: skip


def throughput(answers: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    tokens = sum(a["usage"]["completion_tokens"] for a in answers)
    return {"output_tokens": tokens, "seconds": round(seconds, 2),
            "tok_per_s": round(tokens / seconds, 1)}  # fmt: skip


def measure(engine: str, count: int, concurrency: int, out: Path,
            max_tokens: int = MAX_TOKENS) -> dict[str, Any]:  # fmt: skip
    log = out.with_suffix(f".{engine}.log")
    service = start_service({**ENV, **ENGINE_ENV[engine]}, log_path=log)
    try:
        work = requests_for(count)
        run(service.url, work[:concurrency], True, concurrency, max_tokens)  # warm grammars
        constrained, c_seconds = run(service.url, work, True, concurrency, max_tokens)
        free, f_seconds = run(service.url, work, False, concurrency, max_tokens)
        return {"validation": validity(work, constrained),
                "with_schema": throughput(constrained, c_seconds),
                "without_schema": throughput(free, f_seconds)}  # fmt: skip
    finally:
        service.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="vllm,llamacpp")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="per answer")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("results") / f"structured-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = hardware()
    record: dict[str, Any] = {"date": stamp, "cpu": machine["cpu"],
                              "cpu_flags": machine["cpu_flags"], "env": ENV,
                              "requests": args.requests, "concurrency": args.concurrency,
                              "max_tokens": args.max_tokens, "engines": {}}  # fmt: skip
    for engine in args.engines.split(","):
        record["engines"][engine] = measure(engine, args.requests, args.concurrency, out,
                                            args.max_tokens)
        out.write_text(json.dumps(record, indent=2))
        print(engine, json.dumps(record["engines"][engine]), flush=True)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
