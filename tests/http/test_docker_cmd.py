"""The Docker image's entry point, run as the Dockerfile writes it: its CMD, found in this venv,
with the image's settings on the test ones (a free port instead of 8000). It serves; SIGTERM,
as `docker stop` sends it to the leader, drains the request in flight (200 in full), exits 0
and prints no traceback; an engine that dies makes it exit 1 (for a restart policy)."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmserve.process import ServerProcess, free_port
from tests.conftest import LONG_ENV, TEST_ENV, engine_core, engine_unfinished
from tests.project.test_project_files import docker_cmd
from tests.waiting import wait_for

pytestmark = pytest.mark.engine


def start_image_cmd(tmp_path: Path, name: str) -> ServerProcess:
    """The CMD, its program from this venv's bin (where the image has it on PATH)."""
    program, *args = docker_cmd()
    port = free_port()
    env = {**os.environ, **TEST_ENV, **LONG_ENV, "HOST": "127.0.0.1", "PORT": str(port)}
    command = [str(Path(sys.executable).parent / program), *args]
    return ServerProcess(command, f"http://127.0.0.1:{port}/", env=env,
                         log_path=tmp_path / f"{name}.log").start()


def test_the_image_cmd_serves_and_drains_on_sigterm(tmp_path: Path) -> None:
    server = start_image_cmd(tmp_path, "drain")
    url = server.health_url.rstrip("/")
    try:
        with (
            httpx.Client(base_url=url, timeout=600) as client,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            request = pool.submit(client.post, "/predict", json={"prompt": "Count to ten."})
            wait_for(lambda: engine_unfinished(client) == 1, "the request in the engine", 120)
            os.kill(server.pid, signal.SIGTERM)  # the leader only, as `docker stop` does
            response = request.result(timeout=300)
        assert response.status_code == 200
        assert response.headers["X-Output-Tokens"] == LONG_ENV["MAX_NEW_TOKENS"]
        assert server.process is not None
        try:
            code = server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not exit within 60 s of draining")
        assert code == 0
        log = server.log_text()
        assert "Waiting for connections to close" in log  # uvicorn drained a live request
        assert "Traceback" not in log, log[-3000:]
        # multiprocessing's resource tracker: "... leaked shared_memory objects to clean up".
        # (Not nanobind's "leaked N instances" of triton's bindings at exit, which vLLM's
        # processes print on the AVX-512 Xeon: harmless, and not ours to free.)
        assert not re.search(r"leaked \w+ objects", log), log[-3000:]
    finally:
        server.stop()


def test_the_image_cmd_exits_1_when_the_engine_dies(tmp_path: Path) -> None:
    server = start_image_cmd(tmp_path, "dies")
    try:
        engine_core(server.pid).kill()
        assert server.process is not None
        try:
            code = server.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the server still ran 120 s after its engine died")
        assert code == 1
        assert "the engine died; stopping (exit 1)" in server.log_text()
    finally:
        server.stop()
