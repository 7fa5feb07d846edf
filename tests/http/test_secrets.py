"""Secrets (MODELSCOPE_API_TOKEN today) never reach /info, a settings error, or the server log.

The server here is a real uvicorn process at debug log level with the fake engine: the log a
deployment writes, without the cost of a vLLM start. (vLLM is never handed the token: only
download_model.py reads it.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from llmserve.download import download
from llmserve.errors import SettingsError
from llmserve.process import ServerProcess, free_port
from llmserve.server.app import create_app
from llmserve.settings import Settings, load_settings
from tests.fake_engine import FakeEngineFactory

MARKER = "sekrit-4f9c2e-do-not-print"


def fake_app():  # type: ignore[no-untyped-def]
    """The app with the fake engine and the environment's settings (uvicorn --factory)."""
    return create_app(engine_factory=FakeEngineFactory())


def test_public_settings_and_repr_mask_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", MARKER)
    settings = Settings()
    assert isinstance(settings.modelscope_api_token, SecretStr)
    assert settings.modelscope_api_token.get_secret_value() == MARKER
    assert settings.public()["modelscope_api_token"] == "**********"
    assert MARKER not in repr(settings) and MARKER not in str(settings.public())


def test_a_settings_error_does_not_print_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", MARKER)
    monkeypatch.setenv("MAX_MODEL_LEN", "not-a-number")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "MAX_MODEL_LEN" in str(raised.value) and MARKER not in str(raised.value)


def test_the_download_passes_the_token_to_modelscope_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", MARKER)
    calls: list[dict[str, object]] = []

    def fetch(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(tmp_path / "m")

    download(Settings(model_id="org/private", models_root=tmp_path), fetch=fetch)
    assert calls and calls[0]["token"] == MARKER


def test_info_and_the_server_log_never_show_the_token(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "MODELSCOPE_API_TOKEN": MARKER,
        "MODEL_DIR": str(tmp_path),
        "MAX_MODEL_LEN": "1024",
        "MAX_NEW_TOKENS": "32",
    }
    command = [
        sys.executable, "-m", "uvicorn", "tests.http.test_secrets:fake_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "debug",
    ]  # fmt: skip
    server = ServerProcess(command, health_url=url + "/", env=env, log_path=log, start_timeout=60)
    with server, httpx.Client(base_url=url, timeout=30) as http:
        info = http.get("/info")
        assert info.json()["settings"]["modelscope_api_token"] == "**********"  # it was read
        assert http.post("/predict", json={"prompt": "hi"}).status_code == 200
        assert http.post("/predict", content=b"{bad").status_code == 400
        assert http.get("/nope").status_code == 404
        responses = [info.text, http.get("/").text, http.get("/openapi.json").text]
    text = log.read_text(errors="replace")
    assert "GET /info" in text  # the log was written, at debug level
    assert MARKER not in text
    assert not [body for body in responses if MARKER in body]
