"""LoRA settings and engine arguments, without an engine: LORA_MODULES parsing, the checks at
start (LORA_DEFAULT must name an adapter), and the vLLM keywords and LoRARequest they make."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmserve.engines.base import Sampling
from llmserve.engines.vllm.args import engine_kwargs, lora_request
from llmserve.settings import Settings


@pytest.fixture
def adapters(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
        found[name] = tmp_path / name
    return found


def test_lora_modules_parse_and_make_engine_kwargs(
    adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENABLE_LORA", "1")
    monkeypatch.setenv("LORA_MODULES", f"a={adapters['a']}, b={adapters['b']}")
    monkeypatch.setenv("LORA_DEFAULT", "b")
    monkeypatch.setenv("MAX_LORA_RANK", "32")
    settings = Settings()
    assert settings.lora_modules == adapters
    assert Sampling.from_settings(settings).adapter == "b"
    kwargs = engine_kwargs(settings, tmp_path)
    assert (kwargs["enable_lora"], kwargs["max_lora_rank"], kwargs["max_loras"]) == (True, 32, 1)
    request = lora_request(settings, "b")
    assert (request.lora_name, request.lora_int_id, request.lora_path) == (
        "b",
        2,
        str(adapters["b"]),
    )
    assert lora_request(settings, None) is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ENABLE_LORA": "1", "LORA_MODULES": "a={a}", "LORA_DEFAULT": "zz"},
         "LORA_DEFAULT='zz' is not a LORA_MODULES name"),
        ({"ENABLE_LORA": "1", "LORA_MODULES": "just-a-path"}, "'just-a-path' is not name=path"),
        ({"LORA_MODULES": "a={a}"}, "ENABLE_LORA is not"),
        ({"ENABLE_LORA": "1", "LORA_MODULES": "a={a}/nothing"}, "has no adapter_config.json"),
    ],
)  # fmt: skip
def test_bad_lora_settings_fail_at_start_naming_the_value(
    env: dict[str, str], needle: str, adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(a=adapters["a"]))
    with pytest.raises(ValidationError, match=needle):
        Settings()


def test_lora_with_another_engine_is_one_clear_error() -> None:
    with pytest.raises(ValidationError, match="ENGINE=vllm only"):
        Settings(enable_lora=True, engine="llamacpp")
