"""The llama.cpp rows of the benchmark: opt-in, named, started with ENGINE=llamacpp."""

from __future__ import annotations

import os
from pathlib import Path

from llmserve.bench.cli import build_parser, config_from
from llmserve.bench.config import (
    LLAMACPP_CONCURRENT,
    LLAMACPP_LIST,
    LLAMACPP_V1,
    PREDICT_LIST,
    label,
)
from llmserve.bench.systems import Context, LlamacppService, Service, instances_for


def context(tmp_path: Path) -> Context:
    return Context(
        model_dir=tmp_path,
        engine_kwargs={"model": str(tmp_path)},
        sampling={},
        dtype="auto",
        env={**os.environ, "ENGINE": "vllm", "MODEL_GGUF": str(tmp_path / "m.gguf")},
        run_dir=tmp_path,
        concurrency=8,
        hf_batch_size=2,
        start_timeout=60,
    )


def test_llamacpp_rows_are_opt_in(tmp_path: Path) -> None:
    default = config_from(build_parser().parse_args(["--quick", "--out", str(tmp_path)]))
    assert LLAMACPP_LIST not in default.systems and PREDICT_LIST in default.systems
    chosen = config_from(
        build_parser().parse_args(
            ["--quick", "--out", str(tmp_path), "--systems", "llamacpp-concurrent,predict-list"]
        )
    )
    assert chosen.systems == (PREDICT_LIST, LLAMACPP_CONCURRENT)


def test_llamacpp_service_runs_the_service_with_engine_llamacpp(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"x" * 10)
    systems = instances_for((PREDICT_LIST, LLAMACPP_LIST, LLAMACPP_CONCURRENT), context(tmp_path))
    assert [type(s) for s in systems] == [Service, LlamacppService]
    vllm, llama = systems
    assert vllm.context.env["ENGINE"] == "vllm" and llama.context.env["ENGINE"] == "llamacpp"
    assert llama.rows == (LLAMACPP_LIST, LLAMACPP_CONCURRENT, LLAMACPP_V1)
    assert "llama.cpp" in label(LLAMACPP_CONCURRENT)
    # Its weight size is the served GGUF's, read from /info (test_bench_run, real servers).
