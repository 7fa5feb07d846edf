"""API_SERVERS=2: `llmserve serve` supervises two HTTP fronts on one port over one engine
process (the real llama.cpp engine, real HTTP). Connections spread over both fronts, /metrics
counts every front's requests whichever answers the scrape, SIGTERM drains and exits 0 with
nothing left, and an engine death ends the service with 1."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmserve.errors import SettingsError
from llmserve.harness.launch import serve_command
from llmserve.process import ServerProcess, free_port
from llmserve.server.app import create_app
from llmserve.settings import Settings
from tests.conftest import TEST_ENV, Server

pytestmark = pytest.mark.engine
FRONTS = 2


@pytest.fixture
def fronts(tmp_path: Path) -> Iterator[Server]:
    """`llmserve serve --host H --port P` with API_SERVERS=2: the address from the flags only
    (HOST and PORT unset), as a user or the bench starts it."""
    pytest.importorskip("llama_cpp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    env.update(TEST_ENV, ENGINE="llamacpp", API_SERVERS=str(FRONTS))
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "fronts.log"
    process = ServerProcess(serve_command("127.0.0.1", port), url + "/", env=env, log_path=log)
    server = Server(url=url, process=process.start(), log=log)
    try:
        yield server
    finally:
        server.process.stop()


def tree(pid: int) -> list[psutil.Process]:
    return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]


async def answers(url: str, count: int) -> list[httpx.Response]:
    """`count` /predict requests at once, each on a connection of its own."""

    async def one(n: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            return await client.post("/predict", json={"prompt": f"Count to {n}."})

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def test_fronts_share_the_port_and_count_together(fronts: Server) -> None:
    supervisor = fronts.process.pid
    front_pids = {p.pid for p in psutil.Process(supervisor).children()
                  if "--front-of" in p.cmdline()}  # fmt: skip
    assert len(front_pids) == FRONTS
    # 24 fresh connections: the kernel hashes each to one front's socket (2^-23 that one
    # front gets them all).
    answered = {httpx.get(f"{fronts.url}/info", timeout=30).json()["pid"] for _ in range(24)}
    assert answered == front_pids

    sent = 12
    assert {r.status_code for r in asyncio.run(answers(fronts.url, sent))} == {200}
    families = text_string_to_metric_families(httpx.get(f"{fronts.url}/metrics").text)
    done = {f.name: sum(s.value for s in f.samples if s.name.endswith("_total"))
            for f in families if f.name == "vllm:request_success"}  # fmt: skip
    assert done == {"vllm:request_success": sent}  # both fronts' requests, once each

    processes = tree(supervisor)
    os.kill(supervisor, signal.SIGTERM)
    assert fronts.process.process is not None
    assert fronts.process.process.wait(timeout=120) == 0
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_an_engine_death_ends_the_service_with_1(fronts: Server) -> None:
    worker = httpx.get(f"{fronts.url}/info", timeout=30).json()["engine"]["pid"]
    processes = tree(fronts.process.pid)
    os.kill(worker, signal.SIGKILL)
    assert fronts.process.process is not None
    assert fronts.process.process.wait(timeout=120) == 1
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_an_imported_app_refuses_several_fronts(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="API_SERVERS=2 is served by `llmserve serve`"):
        create_app(Settings(model_dir=tmp_path, api_servers=2))


def test_each_front_must_admit_a_full_list() -> None:
    with pytest.raises(ValueError, match="API_SERVERS=8 fronts leaves each 512"):
        Settings(api_servers=8, max_waiting_prompts=4096, max_batch_prompts=1024)
    with pytest.raises(ValueError, match="REPLICA_LAYOUT='shared'"):
        Settings(api_servers=2, replica_layout="shared")
