"""ENGINE=llamacpp without starting it: its settings group, its ENGINES row, and the judge's
token counter reading the tokenizer from a GGUF (fast: no llama.cpp needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmserve.engines import ENGINES
from llmserve.gguf.bundled import find_embedded_gguf
from llmserve.judge.tokens import find_tokenizer_dir, load_counter
from llmserve.settings import Settings


def test_llamacpp_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE", "llamacpp")
    monkeypatch.setenv("LLAMACPP_PARALLEL", "3")
    monkeypatch.setenv("LLAMACPP_THREADS", "2")
    settings = Settings()
    assert (settings.engine, settings.llamacpp_parallel, settings.llamacpp_threads) == (
        "llamacpp",
        3,
        2,
    )
    assert settings.model_gguf is None and "llamacpp" in ENGINES


def test_a_bad_llamacpp_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACPP_PARALLEL", "0")
    with pytest.raises(ValidationError, match="llamacpp_parallel"):
        Settings()


def test_the_judge_counts_tokens_with_the_gguf_tokenizer(tmp_path: Path) -> None:
    gguf = find_embedded_gguf()
    info = {"engine": {"model_gguf": str(gguf)}}
    found, source = find_tokenizer_dir(None, info)
    assert (found, source) == (gguf, "/info engine.model_gguf")
    count = load_counter(found)
    # SmolLM2's tokenizer: one token per common word here, so a longer text has more.
    assert 0 < count("Paris.") < count("The capital of France is Paris.")


def test_repacked_buffers_are_on_except_on_a_cpu_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmserve.engines.llamacpp import engine

    monkeypatch.setattr(engine, "cpu_flags", lambda: ["avx512f", "avx512_bf16", "amx_int8"])
    assert engine.repack_default(None) is False  # the Xeon whose first decode crashed
    assert engine.repack_default(True) is True  # LLAMACPP_REPACK=1 wins
    monkeypatch.setattr(engine, "cpu_flags", lambda: ["avx2", "avx512f", "avx512_vnni"])
    assert engine.repack_default(None) is True
    assert engine.repack_default(False) is False
    monkeypatch.setenv("LLAMACPP_REPACK", "0")
    assert Settings().llamacpp_repack is False
