"""Benchmark /predict against raw vLLM, `vllm serve` and transformers: `python bench.py --help`."""

if __name__ == "__main__":  # the systems run in child processes; nothing starts on import
    from llmserve.bench.cli import main

    raise SystemExit(main())
