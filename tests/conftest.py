"""Shared fixtures: one real server (real vLLM engine, real model, real HTTP) per test session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from llmserve.harness.launch import start_service
from llmserve.harness.metadata import hardware
from llmserve.process import ServerProcess


def pytest_report_header() -> list[str]:
    """The machine in the session header, so that a CI log says which CPU ran the tests (the
    CPU of this machine kind varies, and with it the dtype and the kernels vLLM has)."""
    machine = hardware()
    return [
        f"cpu: {machine['cpu']}, {machine['usable_cpus']} usable of {machine['cpu_count']}, "
        f"{machine['memory_gib']} GiB",
        f"cpu flags: {' '.join(machine['cpu_flags'])}",
    ]


# Test engines start eager (no torch.compile) and small: start-up time dominates the suite.
# float32 because greedy answers in bf16 change with the batch they run in (kernel numerics,
# not request mix-ups); the tests compare batched answers with answers computed alone.
TEST_ENV = {
    "DTYPE": "float32",
    "ENFORCE_EAGER": "1",
    "MAX_MODEL_LEN": "1024",
    "MAX_NEW_TOKENS": "32",
    "MAX_BATCH_PROMPTS": "64",
    "GPU_MEMORY_UTILIZATION": "0.2",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}
# On top of TEST_ENV, for a server whose every answer is long (requests that outlast a test):
# every request generates MAX_NEW_TOKENS tokens: for one prompt alone, tens of seconds on a
# 2-core CPU in float32 and several on a GPU.
LONG_ENV = {
    "IGNORE_EOS": "1",
    "MAX_NEW_TOKENS": "512",
    "MAX_BATCH_PROMPTS": "256",
    "SHUTDOWN_GRACE_SECONDS": "300",
}


@dataclass
class Server:
    url: str
    process: ServerProcess
    log: Path

    def client(self, timeout: float = 300.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


def start_server(tmp_dir: Path, name: str, **env: str) -> Server:
    """`llmserve serve` on a free port with the test settings (and `env` on top)."""
    log = tmp_dir / f"{name}.log"
    service = start_service({**TEST_ENV, **env}, log_path=log)
    return Server(url=service.url, process=service.server, log=log)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's shared server with the test settings above."""
    srv = start_server(tmp_path_factory.mktemp("server"), "server")
    try:
        yield srv
    finally:
        srv.process.stop()


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second shared server with ENGINE=llamacpp (the bundled GGUF); skipped where
    llama-cpp-python is not installed (requirements-llamacpp.txt)."""
    pytest.importorskip("llama_cpp")
    srv = start_server(
        tmp_path_factory.mktemp("llamacpp"), "llamacpp", ENGINE="llamacpp", LLAMACPP_PARALLEL="8"
    )
    try:
        yield srv
    finally:
        srv.process.stop()


@pytest.fixture(params=["vllm", "llamacpp"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """The session's server of each engine in turn: API tests taking it run against both."""
    fixture = "server" if request.param == "vllm" else "llamacpp_server"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def write_chat_jsonl(path: Path, qa: list[tuple[str, str, str]]) -> Path:
    """A data file in the judge's chat format: one (split, question, answer) per line."""
    with path.open("w", encoding="utf-8") as file:
        for n, (split, question, answer) in enumerate(qa):
            messages = [{"role": "user", "content": question},
                        {"role": "assistant", "content": answer}]
            record = {"id": f"q{n}", "split": split, "messages": messages}
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def engine_unfinished(client: httpx.Client) -> int:
    """The requests the server's engine holds (its /info load)."""
    return int(client.get("/info").json()["load"]["engine_unfinished"])


def is_engine_core(process: psutil.Process) -> bool:
    return "EngineCore" in " ".join(process.cmdline()) or "EngineCore" in process.name()


def engine_cores(server_pid: int) -> list[psutil.Process]:
    """The vLLM engine-core children of our own server (never anyone else's), one per replica."""
    return [c for c in psutil.Process(server_pid).children(recursive=True) if is_engine_core(c)]


def engine_core(server_pid: int) -> psutil.Process:
    """The vLLM engine-core child of our own server (never anyone else's process)."""
    for child in psutil.Process(server_pid).children(recursive=True):
        if is_engine_core(child):
            return child
    raise AssertionError("no EngineCore process under the server")
