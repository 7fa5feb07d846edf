"""A short real benchmark run: every system, real engines, tiny sizes (slow: engine starts)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import psutil
import pytest

from llmserve.bench.cli import main
from llmserve.bench.config import DEFAULT_SYSTEMS, LLAMACPP_CONCURRENT, LLAMACPP_LIST

# The llama.cpp rows run where llama-cpp-python is installed (run_tests.sh installs it).
LLAMACPP = importlib.util.find_spec("llama_cpp") is not None
SYSTEMS = (*DEFAULT_SYSTEMS, *((LLAMACPP_LIST, LLAMACPP_CONCURRENT) if LLAMACPP else ()))

pytestmark = pytest.mark.engine

PROMPTS, OUTPUT_LEN = 4, 8


def test_quick_run_of_all_systems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small engines: start-up dominates, and the machine is shared.
    monkeypatch.setenv("GPU_MEMORY_UTILIZATION", "0.1")
    monkeypatch.setenv("MAX_MODEL_LEN", "512")
    # Other fixtures (the session's shared server) may already have children running.
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    flags = [
        "--quick", "-n", str(PROMPTS), "--input-len", "48", "--output-len", str(OUTPUT_LEN),
        "--repeats", "3", "--latency-iters", "3", "--out", str(tmp_path),
    ]
    first = main([*flags, "--systems", "vllm-offline,predict-list,predict-concurrent,vllm-serve"])
    assert first == 0
    # A second invocation adds the rest to the same record; vllm-offline is already there.
    code = main([*flags, "--systems", ",".join(("vllm-offline", *SYSTEMS[4:])), "--resume"])
    data = json.loads((tmp_path / "record.json").read_text())
    errors = {name: facts.get("error") for name, facts in data["systems"].items()}
    assert code == 0, errors
    assert data["status"] == "complete"
    assert list(data["throughput"]) == list(SYSTEMS)
    for row, entry in data["throughput"].items():
        # ignore_eos: every system generates, and counts, the same tokens.
        assert entry["output_tokens"]["median"] == PROMPTS * OUTPUT_LEN, row
        assert entry["tokens_per_s"]["n"] == 3
    assert data["ratios"]["vllm-offline"] == 1.0
    latency = ["vllm-offline", "predict", "vllm-serve", "transformers"]
    assert list(data["latency"]) == [*latency, *(["llamacpp"] if LLAMACPP else [])]
    for name, facts in data["systems"].items():
        assert facts["peak_rss_mb"] > facts["weights_mb"] > 0, name
        assert Path(facts["log"]).exists()
    if LLAMACPP:  # the served GGUF's size (from /info), not the HF checkpoint's
        systems = data["systems"]
        assert systems["llamacpp"]["weights_mb"] < systems["vllm-offline"]["weights_mb"] / 2
    assert data["engine_kwargs"]["enforce_eager"] is True  # all vLLM systems alike
    assert data["settings"]["max_num_batched_tokens"] == data["engine_kwargs"][
        "max_num_batched_tokens"] > 0  # pinned, so vllm serve gets offline's value too
    assert len(data["resumed"]) == 1 and data["config"]["systems"] == list(SYSTEMS)
    text = (tmp_path / "results.md").read_text()
    assert all(f"| {row} (" in text for row in SYSTEMS)
    assert (tmp_path / "chart.png").exists()
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after - before == set()  # every system this run started was stopped


def test_vllm_bench_serve_rows_against_v1_and_vllm_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM's own client (`vllm bench serve`) against our /v1/completions (vLLM and, where
    installed, llama.cpp) and vllm serve, in one run: every request completes on each, with
    the same output tokens."""
    monkeypatch.setenv("GPU_MEMORY_UTILIZATION", "0.1")
    monkeypatch.setenv("MAX_MODEL_LEN", "512")
    llamacpp = ["llamacpp-v1-completions"] if LLAMACPP else []
    rows = ["v1-completions", "vllm-serve-bench", *llamacpp]
    code = main([
        "--quick", "-n", str(PROMPTS), "--input-len", "48", "--output-len", str(OUTPUT_LEN),
        "--repeats", "1", "--phases", "throughput", "--out", str(tmp_path),
        "--systems", ",".join(rows),
    ])  # fmt: skip
    data = json.loads((tmp_path / "record.json").read_text())
    assert code == 0, {name: facts.get("error") for name, facts in data["systems"].items()}
    assert list(data["throughput"]) == rows
    for row, entry in data["throughput"].items():
        assert entry["failed"] == 0, row
        assert entry["output_tokens"]["median"] == PROMPTS * OUTPUT_LEN, row
    for name in ("predict", "vllm-serve", *(["llamacpp"] if LLAMACPP else [])):  # vLLM's file
        result = json.loads((tmp_path / f"{name}.client.json").read_text())
        assert result["completed"] == PROMPTS and result["failed"] == 0, name
    assert all(f"| {row} (" in (tmp_path / "results.md").read_text() for row in rows)
