"""Engine faults: a failed start ends the process non-zero; an engine killed under load means
fast 503s for every request in flight, `/` 503, then the process ends non-zero."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmserve.process import ServerFailed
from tests.conftest import LONG_ENV, engine_core, start_server

pytestmark = pytest.mark.engine


def test_engine_start_failure_exits_non_zero(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-checkpoint"
    empty.mkdir()
    with pytest.raises(ServerFailed, match="exited with code 1"):
        start_server(tmp_path, "broken", MODEL_DIR=str(empty))
    log = (tmp_path / "broken.log").read_text()
    assert "error: the engine failed to start" in log


def test_engine_killed_under_load(tmp_path: Path) -> None:
    """The engine process killed with requests in flight: each of them answers 503 within
    seconds, `/` turns 503, and then the server exits 1 so that a supervisor restarts it."""
    server = start_server(tmp_path, "dying", **LONG_ENV)  # answers that outlast the test
    prompts: list[Any] = [[f"Story {n}:" for n in range(64)], "One", "Two", "Three"]
    try:
        with (
            httpx.Client(base_url=server.url, timeout=120) as client,
            concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool,
        ):

            def predict(prompt: Any) -> tuple[int, str, float]:
                with httpx.Client(base_url=server.url, timeout=120) as own:
                    response = own.post("/predict", json={"prompt": prompt})
                return response.status_code, response.text, time.monotonic()

            requests = [pool.submit(predict, prompt) for prompt in prompts]
            deadline = time.monotonic() + 120
            while client.get("/info").json()["load"]["engine_unfinished"] < 67:
                assert time.monotonic() < deadline, "the requests never all reached the engine"
                time.sleep(0.05)
            engine_core(server.process.pid).kill()
            killed = time.monotonic()
            # vLLM's monitor notices the death; poll / until it says so (bounded). The server
            # goes on answering for DEATH_LINGER_S before it stops.
            while (health := client.get("/")).status_code != 503:
                assert time.monotonic() < killed + 30, "/ still healthy 30 s after engine death"
                time.sleep(0.05)
            assert health.json()["status"] == "dead"
            response = client.post("/predict", json={"prompt": "Hi"}, timeout=10)
            assert response.status_code == 503
            assert "dead" in response.json()["error"]
            for request in requests:
                status, text, answered = request.result(timeout=60)
                assert status == 503 and "dead" in text
                assert answered - killed < 30, "an in-flight request waited for its 503"
        code = server.process.process.wait(timeout=60)  # type: ignore[union-attr]
        assert code == 1
        assert "the engine died; stopping (exit 1)" in server.log.read_text()
    finally:
        server.process.stop()
