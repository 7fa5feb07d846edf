"""`llmserve serve`'s process over the fake engine (tests/fake_engine.py), in seconds: SIGTERM
drains a request in flight (200) and the process exits 0; an engine death makes it exit 1.
The same with the real engine: tests/http/test_load_faults.py and tests/http/test_faults.py."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from llmserve.paths import REPO_ROOT
from llmserve.process import free_port

# `serve()` of `llmserve serve` with create_app's engine factory replaced by the fake one.
SERVE_FAKE = """
import sys
import time
from llmserve.cli import serve as serve_command
from llmserve.server import app as server_app
from llmserve.settings import Settings
from tests.fake_engine import FakeEngineFactory

model_dir, port, delay, die = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
load_seconds = float(sys.argv[5])
factory = FakeEngineFactory(options={"delay": delay, "die_during_generate": die == "1"})

def slow_factory(settings, model_dir):  # an engine that takes load_seconds to start
    time.sleep(load_seconds)
    return factory(settings, model_dir)

create_app = server_app.create_app
server_app.create_app = lambda settings, attach=(): create_app(settings, slow_factory)
settings = Settings(model_dir=model_dir, host="127.0.0.1", port=port, shutdown_grace_seconds=30)
raise SystemExit(serve_command.serve(settings))
"""


@contextmanager
def fake_server(
    tmp_path: Path, delay: float = 0.0, die: bool = False, load: float = 0.0, ready: int = 200
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The fake-engine server, once `/` answers `ready` (503: serving, the engine loading)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_FAKE, str(tmp_path), str(port), str(delay), str(int(die)),
         str(load)],
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited before it was ready"
            assert time.monotonic() < deadline, "the server was not ready in 60 s"
            try:
                if httpx.get(url + "/", timeout=5).status_code == ready:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_sigterm_drains_then_exits_0(tmp_path: Path) -> None:
    with (
        fake_server(tmp_path, delay=2.0) as (process, url),
        httpx.Client(base_url=url, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        request = pool.submit(client.post, "/predict", json={"prompt": "hi there"})
        deadline = time.monotonic() + 10
        while client.get("/info").json()["load"]["engine_unfinished"] != 1:
            assert time.monotonic() < deadline, "the request never reached the engine"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGTERM)
        response = request.result(timeout=30)
        assert response.status_code == 200
        assert response.json() == {"response": "echo: hi there"}
        assert process.wait(timeout=30) == 0


def test_engine_death_exits_1(tmp_path: Path) -> None:
    with fake_server(tmp_path, die=True) as (process, url):
        response = httpx.post(url + "/predict", json={"prompt": "hi"}, timeout=30)
        assert response.status_code == 503
        assert httpx.get(url + "/", timeout=5).status_code == 503  # within DEATH_LINGER_S
        assert process.wait(timeout=30) == 1


def test_sigterm_while_the_engine_loads_exits_at_once(tmp_path: Path) -> None:
    """A stop during a long engine start does not wait for the start to end (an API_SERVERS
    front waiting for an engine that will never come waited out the whole load timeout)."""
    with fake_server(tmp_path, load=600.0, ready=503) as (process, url):
        assert httpx.get(url + "/", timeout=5).json()["status"] == "loading"
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
