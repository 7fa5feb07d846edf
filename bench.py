"""Benchmark /predict against raw vLLM, `vllm serve` and transformers: `python bench.py --help`.

A thin shim over `llmserve bench`; run it with any python: it re-executes under .venv.
"""

from llmserve.cli.bootstrap import run

if __name__ == "__main__":  # the systems run in child processes; nothing starts on import
    raise SystemExit(run("bench", __file__))
