"""Engine faults: a failed start ends the process non-zero; a dead engine means fast 503s."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest

from llmserve.harness.launch import ServerFailed
from tests.conftest import start_server

pytestmark = pytest.mark.engine


def test_engine_start_failure_exits_non_zero(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-checkpoint"
    empty.mkdir()
    with pytest.raises(ServerFailed, match="exited with code 1"):
        start_server(tmp_path, "broken", MODEL_DIR=str(empty))
    log = (tmp_path / "broken.log").read_text()
    assert "error: the engine failed to start" in log


def engine_core(server_pid: int) -> psutil.Process:
    """The vLLM engine-core child of our own server (never anyone else's process)."""
    for child in psutil.Process(server_pid).children(recursive=True):
        if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name():
            return child
    raise AssertionError("no EngineCore process under the server")


def test_dead_engine_gives_fast_503(tmp_path: Path) -> None:
    server = start_server(tmp_path, "dying")
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            assert client.post("/predict", json={"prompt": "Hi"}).status_code == 200
            engine_core(server.process.pid).kill()
            # vLLM's monitor notices the death; poll / until it says so (bounded).
            deadline = time.monotonic() + 60
            while client.get("/").status_code != 503:
                assert time.monotonic() < deadline, "/ still healthy 60 s after engine death"
                time.sleep(0.2)
            assert client.get("/").json()["status"] == "dead"
            response = client.post("/predict", json={"prompt": "Hi"}, timeout=10)
            assert response.status_code == 503
            assert "dead" in response.json()["error"]
    finally:
        server.process.stop()
