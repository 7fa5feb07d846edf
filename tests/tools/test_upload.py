"""`llmserve upload`: everything up to modelscope's HubApi.upload_folder, which is replaced
(ModelScope is unreachable here); the token reaches that call and never the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmserve import upload

TOKEN = "ms-secret-token-0123456789"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"0")
    return adapter


def test_upload_calls_upload_folder_with_the_token_and_never_prints_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []
    from modelscope.hub.api import HubApi

    monkeypatch.setattr(HubApi, "upload_folder", lambda self, **kw: calls.append(kw) or {})
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", TOKEN)
    assert upload.main([str(folder), "me/smol-lora", "--message", "first"]) == 0
    (call,) = calls
    assert call["repo_id"] == "me/smol-lora"
    assert call["folder_path"] == str(folder)
    assert call["repo_type"] == "model"
    assert call["commit_message"] == "first"
    assert call["token"] == TOKEN
    assert "checkpoint-*/*" in call["ignore_patterns"]
    out = capsys.readouterr()
    assert "me/smol-lora" in out.out
    assert TOKEN not in out.out + out.err


def test_hub_failure_is_one_line_without_the_token(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelscope.hub.api import HubApi

    def refuse(self: Any, **kw: Any) -> None:
        raise RuntimeError(f"401 bad token {kw['token']}")

    monkeypatch.setattr(HubApi, "upload_folder", refuse)
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", TOKEN)
    assert upload.main([str(folder), "me/smol-lora"]) == 1
    err = capsys.readouterr().err
    assert TOKEN not in err and len(err.strip().splitlines()) == 1 and "401" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{folder}", "no-slash"], "'no-slash' is not owner/name"),
        (["{folder}/missing", "me/x"], "does not exist"),
        (["{folder}", "me/x"], "MODELSCOPE_API_TOKEN is not set"),
    ],
)
def test_bad_input_is_a_usage_error(
    folder: Path,
    args: list[str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MODELSCOPE_API_TOKEN", raising=False)
    assert upload.main([a.format(folder=folder) for a in args]) == 2
    assert needle in capsys.readouterr().err
