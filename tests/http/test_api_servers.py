"""API_SERVERS=2: `llmserve serve` supervises two HTTP fronts on one port over one engine
(real engines, real HTTP): with vLLM, one engine core of which each front runs a client; with
llama.cpp, one engine worker process both fronts reach. Connections spread over both fronts,
/metrics counts every front's requests whichever answers the scrape, SIGTERM drains and exits
0 with nothing left, and an engine death ends the service with 1."""

from __future__ import annotations

import asyncio
import contextlib
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
from tests.conftest import TEST_ENV, Server, is_engine_core

pytestmark = pytest.mark.engine
FRONTS = 2
GONE_BOUND_S = 30.0  # a process still running this long after the supervisor exited is left


@pytest.fixture(params=["vllm", "llamacpp"])
def fronts(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """`llmserve serve --host H --port P` with API_SERVERS=2 over each engine: the address
    from the flags only (HOST and PORT unset), as a user or the bench starts it."""
    if request.param == "llamacpp":
        pytest.importorskip("llama_cpp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    env.update(TEST_ENV, ENGINE=request.param, API_SERVERS=str(FRONTS))
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


def assert_gone(processes: list[psutil.Process]) -> None:
    """Every process of the service's tree ends, within a bound: a child may end a moment after
    the supervisor (multiprocessing's resource tracker ends when its parent's pipe closes; in
    the whole suite on 2 busy cores one was still running when the supervisor's exit was seen)."""
    _, alive = psutil.wait_procs(processes, timeout=GONE_BOUND_S)
    left = []
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                left.append((process.pid, process.cmdline()))
    assert not left


def engine_process(supervisor: int) -> psutil.Process:
    """The one engine process the supervisor started: vLLM's engine core, or the llama.cpp
    engine's worker process."""
    worker = "llmserve.engines.process.worker"
    (engine,) = [p for p in psutil.Process(supervisor).children()
                 if is_engine_core(p) or worker in p.cmdline()]  # fmt: skip
    return engine


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
    infos = [httpx.get(f"{fronts.url}/info", timeout=30).json() for _ in range(24)]
    assert {info["pid"] for info in infos} == front_pids
    if infos[0]["settings"]["engine"] == "vllm":  # each front is its own client of the core
        clients = {info["pid"]: info["engine"]["core_client"] for info in infos}
        assert sorted(c["index"] for c in clients.values()) == list(range(FRONTS))
        assert {c["of"] for c in clients.values()} == {FRONTS}

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
    assert_gone(processes)


def test_an_engine_death_ends_the_service_with_1(fronts: Server) -> None:
    processes = tree(fronts.process.pid)
    engine_process(fronts.process.pid).kill()
    assert fronts.process.process is not None
    assert fronts.process.process.wait(timeout=120) == 1
    assert_gone(processes)


def test_an_imported_app_refuses_several_fronts(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="API_SERVERS=2 is served by `llmserve serve`"):
        create_app(Settings(model_dir=tmp_path, api_servers=2))


def test_each_front_must_admit_a_full_list() -> None:
    with pytest.raises(ValueError, match="API_SERVERS=8 fronts leaves each 512"):
        Settings(api_servers=8, max_waiting_prompts=4096, max_batch_prompts=1024)
    with pytest.raises(ValueError, match="REPLICA_LAYOUT='shared'"):
        Settings(api_servers=2, replica_layout="shared")
    with pytest.raises(ValueError, match="API_SERVERS=2 with DATA_PARALLEL_SIZE=2"):
        Settings(api_servers=2, engine="vllm", data_parallel_size=2)
