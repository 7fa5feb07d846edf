"""The engine seam without an engine: the registry, launch environments, Sampling, prompt
rendering (str or chat messages), and the rule that only engines/ imports vLLM."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import get_args

import pytest

from llmserve import engines
from llmserve.engines import ENGINES, UnknownEngine, launch_env, load_engine_factory
from llmserve.engines.base import ChatMessage, Generation, PromptTooLong, Sampling
from llmserve.engines.render import PromptRenderer
from llmserve.engines.vllm import args, cpu_env, device
from llmserve.model import resolve_model_dir
from llmserve.settings import EngineName, Settings

ROOT = Path(__file__).resolve().parents[2]
# The benchmark's raw-vLLM reference systems and vLLM's serving client are the only users of
# vLLM outside engines/.
VLLM_ALLOWED = {"llmserve/bench/systems.py", "llmserve/bench/worker.py",
                "llmserve/bench/vllm_bench_serve.py"}


def test_engine_setting_names_the_registry() -> None:
    assert set(get_args(EngineName)) == set(ENGINES)


def test_unknown_engine_is_named() -> None:
    with pytest.raises(UnknownEngine, match=r"unknown ENGINE 'llama'; known: llamacpp, vllm"):
        load_engine_factory("llama")


def test_vllm_factory_loads_lazily() -> None:
    from llmserve.engines.vllm.engine import VllmEngine

    assert load_engine_factory("vllm") is VllmEngine


def test_launch_env_never_over_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_env, "find_tcmalloc", lambda: "/lib/libtcmalloc_minimal.so.4")
    monkeypatch.setattr(cpu_env, "find_iomp", lambda: None)
    monkeypatch.setattr(cpu_env, "is_cpu_build", lambda environ: True)
    monkeypatch.setattr(cpu_env, "SMALL_MACHINE_CORES", 0)  # a big machine: vLLM's reservation
    settings = Settings()
    assert launch_env(settings, {}) == {"LD_PRELOAD": "/lib/libtcmalloc_minimal.so.4"}
    assert launch_env(settings, {"LD_PRELOAD": "mine.so"}) == {}
    monkeypatch.setattr(cpu_env, "SMALL_MACHINE_CORES", 1024)  # a small one: none reserved
    assert launch_env(settings, {"LD_PRELOAD": "mine.so"}) == {
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    monkeypatch.setattr(cpu_env, "is_cpu_build", lambda environ: False)
    assert launch_env(settings, {}) == {}


def test_launch_env_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "vllm", dataclasses.replace(ENGINES["vllm"], launch_env=None))
    assert engines.launch_env(Settings(), {}) == {}


def test_cheap_cpu_detection_agrees_with_vllm() -> None:
    assert device.is_cpu_build({}) == (device.device_type() == "cpu")
    assert device.is_cpu_build({"VLLM_TARGET_DEVICE": "cpu"})


def test_sampling_defaults_overrides_and_checks() -> None:
    settings = Settings(temperature=0.7, stop_strings=["END"], max_new_tokens=9)
    base = Sampling.from_settings(settings)
    assert (base.temperature, base.stop, base.max_tokens) == (0.7, ("END",), 9)
    varied = base.replace(temperature=0.0, stop=["x", "y"])
    assert varied.temperature == 0.0 and varied.stop == ("x", "y") and base.temperature == 0.7
    assert Sampling() == Sampling.from_settings(Settings())  # the same defaults
    with pytest.raises(ValueError, match=r"top_p=1\.5 is out of range"):
        base.replace(top_p=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.temperature = 1.0  # type: ignore[misc]
    kwargs = args.sampling_kwargs(varied)
    assert kwargs["stop"] == ["x", "y"] and kwargs["presence_penalty"] == 0.0
    assert "max_tokens" not in kwargs


def test_generation_counts_and_prompt_too_long() -> None:
    result = Generation(
        texts=["a", "b"],
        prompt_tokens=[3, 4],
        completion_tokens=[2, 5],
        finish_reasons=["stop", "length"],
        engine_seconds=0.1,
        ttft_seconds=None,
    )
    assert result.output_tokens == 7
    error = PromptTooLong(2, 1500, 1024)
    assert str(error) == (
        "prompt[2] has 1500 tokens after templating; the limit is 1023 (MAX_MODEL_LEN=1024)"
    )
    assert isinstance(error, ValueError)


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_dir(Settings()))


def test_renderer_string_and_messages(tokenizer) -> None:  # type: ignore[no-untyped-def]
    renderer = PromptRenderer(tokenizer, "Be brief.", raw=False)
    user: list[ChatMessage] = [{"role": "user", "content": "Hi"}]
    # A string is one user turn; SYSTEM_PROMPT goes first.
    assert renderer.text("Hi") == renderer.text(user)
    assert "Be brief." in renderer.text("Hi") and renderer.text("Hi").endswith("assistant\n")
    # A conversation with its own system message keeps it, without SYSTEM_PROMPT.
    talk: list[ChatMessage] = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Arr."},
        {"role": "user", "content": "Where is the gold?"},
    ]
    text = renderer.text(talk)
    assert "You are a pirate." in text and "Be brief." not in text
    assert text.index("Arr.") < text.index("Where is the gold?")
    assert renderer.token_ids([talk, "Hi"])[1] == renderer.token_ids(["Hi"])[0]
    assert talk[0]["content"] == "You are a pirate." and len(talk) == 4  # input untouched


def test_renderer_raw(tokenizer) -> None:  # type: ignore[no-untyped-def]
    raw = PromptRenderer(tokenizer, "Be brief.", raw=True)
    assert raw.text("Hi") == "Hi"  # as today: no template, no SYSTEM_PROMPT
    assert raw.text([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]) == (
        "S\n\nU"
    )
    assert raw.token_ids(["Hi"])[0] == list(tokenizer("Hi")["input_ids"])


def test_renderer_without_a_template_is_raw(tokenizer) -> None:  # type: ignore[no-untyped-def]
    class NoTemplate:
        chat_template = None

    assert PromptRenderer(NoTemplate(), None, raw=False).raw


def vllm_imports(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "vllm" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vllm":
            return True
    return False


def test_only_engines_import_vllm() -> None:
    package = ROOT / "llmserve"
    offenders = [
        str(path.relative_to(ROOT))
        for path in package.rglob("*.py")
        if not path.is_relative_to(package / "engines")
        and str(path.relative_to(ROOT)) not in VLLM_ALLOWED
        and vllm_imports(path)
    ]
    assert offenders == []
