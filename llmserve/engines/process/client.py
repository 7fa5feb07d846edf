"""ProcessEngine: an Engine whose engine runs in a worker process (llmserve.engines.process.worker),
reached over loopback HTTP. What ENGINE_REPLICAS uses under REPLICA_LAYOUT=process.

Each worker is a whole Python process with its own GIL: its engine's output handling
(detokenizing, building outputs, per step and request) no longer shares one interpreter with
the other replicas and the HTTP front, which is where several engines in the API process
stalled (see llmserve/engines/replicas.py for the measurements).

`unfinished` counts the prompts this client has in flight on the worker (a sync property must
not do I/O); the worker's own engine count is on its GET /health. `dead` is true once the
worker process ended, answered EngineDead, or dropped a connection mid-request; the in-flight
requests then fail with EngineDead at once (the dispatcher's fast 503).
"""

from __future__ import annotations

import json
import os
import resource
import select
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from llmserve.connections import ClientPool
from llmserve.engines.base import (
    Delta,
    EngineDead,
    EngineError,
    Generation,
    Prompt,
    Sampling,
    Tokens,
)
from llmserve.engines.process import wire
from llmserve.process import ServerProcess, free_port, health_code

if TYPE_CHECKING:
    from llmserve.settings import Settings

WORKER = "llmserve.engines.process.worker"
# Seconds this client keeps an idle connection to a worker; the worker keeps them 10x longer.
# With both at 5 s (httpx's and uvicorn's defaults) requests at C=1024 on an H200 were sent on
# connections the worker was closing: ReadError, and the replica was taken for dead.
KEEPALIVE_S = 30.0


def raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit. The API process holds two sockets per request
    in flight (its client's and the worker's): at C=1024 on an H200 the usual soft limit of
    1024 ran out, and the worker connections failed (as vLLM's own server does, raise it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Worker(Protocol):
    """The worker process as its client sees it: its own child, or one it attached to."""

    @property
    def pid(self) -> int: ...
    @property
    def running(self) -> bool: ...
    def stop(self, timeout: float = 30.0) -> int | None: ...


def start_worker(model_dir: Path, port: int | None = None) -> tuple[str, ServerProcess]:
    """A worker process serving `model_dir` on `port` (default: a free one), started and
    ready: its URL and process (an EngineError, with its exit code, if it fails to start)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", WORKER, "--port", str(port),
               "--model-dir", str(model_dir), "--parent-pid", str(os.getpid())]  # fmt: skip
    # Its output goes to ours (the engine's log lines), its cwd is ours (relative paths in
    # the settings mean the same), its environment ours: the same settings.
    worker = ServerProcess(command, f"{url}/health", cwd=Path.cwd(), inherit_output=True)
    worker.what = "engine replica process"
    try:
        worker.start()
    except Exception as exc:
        raise EngineError(str(exc)) from exc
    return url, worker


class WorkerProcesses:
    """`replicas` worker processes every API_SERVERS front reaches over HTTP (an
    engines.attach.SharedEngines). Their ports are chosen before they start, so the fronts
    can be told them first; a front sees a worker's death itself (AttachedWorker)."""

    def __init__(self, model_dir: Path, replicas: int) -> None:
        self.model_dir = model_dir
        self.ports = [free_port() for _ in range(replicas)]
        self.workers: list[ServerProcess] = []

    def attachments(self, front: int) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> None:
        for port in self.ports:  # one after another: on a GPU each sizes its cache alone
            self.workers.append(start_worker(self.model_dir, port)[1])

    def dead(self) -> str | None:
        return None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class AttachedWorker:
    """A worker another process started and stops (the API_SERVERS supervisor, for each HTTP
    front): waited for until ready, then watched through a pidfd; stop() leaves it be."""

    what = "engine replica process"

    def __init__(self, url: str, timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        while health_code(f"{url}/health") != 200:  # its owner ends us if it fails to start
            if time.monotonic() > deadline:
                raise EngineError(f"engine process at {url} not ready after {timeout:.0f} s")
            time.sleep(0.5)
        self.pid = int(httpx.get(f"{url}/facts", timeout=60).json()["pid"])
        self._pidfd = os.pidfd_open(self.pid)

    @property
    def running(self) -> bool:
        readable, _, _ = select.select([self._pidfd], [], [], 0)  # readable once it exited
        return not readable

    def stop(self, timeout: float = 30.0) -> int | None:
        return None


class ProcessEngine:
    """One engine replica in its own process (see the module docstring). Building it starts
    the worker and returns once its engine is ready (an EngineError, with the worker's exit
    code, if it fails to start); `attach` reaches a worker another process owns."""

    def __init__(self, settings: Settings, model_dir: Path) -> None:
        raise_open_files_limit()
        url, worker = start_worker(model_dir)
        self._connect(url, worker)

    @classmethod
    def attach(cls, url: str) -> ProcessEngine:
        """The engine of the worker at `url`, once it is ready (see AttachedWorker)."""
        raise_open_files_limit()
        engine = cls.__new__(cls)
        engine._connect(url, AttachedWorker(url))
        return engine

    def _connect(self, url: str, worker: Worker) -> None:
        self.url, self.worker = url, worker
        self._facts: dict[str, Any] = httpx.get(f"{self.url}/facts", timeout=60).json()
        # A connection per request in flight (C=1024 users -> 1024), each its own client:
        # one shared pool of 1024 held 2 replicas below one engine (llmserve/connections.py).
        self.pool = ClientPool(self.url, timeout=None, keepalive_expiry=KEEPALIVE_S)
        self._died: str | None = None
        self._unfinished = 0

    # --- failures ----------------------------------------------------------------------------

    def _dead_error(self, cause: object) -> EngineDead:
        self._died = self._died or f"engine process {self.worker.pid}: {cause!r}"
        return EngineDead(self._died)

    def _transport_error(self, error: httpx.TransportError) -> EngineError:
        """A failed connection: the replica died if its process did; otherwise only this
        request failed (a 503 too, but the replica serves on). The worker keeps idle
        connections far longer than this client does (KEEPALIVE_S), so a request never
        races the worker closing its connection."""
        if not self.worker.running:
            return self._dead_error(error)
        return EngineDead(f"engine process {self.worker.pid} dropped a request: {error!r}")

    def _refusal(self, status: int, body: bytes) -> EngineError:
        try:
            error = wire.decode_error(json.loads(body))
        except ValueError:
            error = EngineError(f"engine process answered {status}: {body[:200]!r}")
        if isinstance(error, EngineDead):
            return self._dead_error(error)
        return error

    # --- the Engine Protocol -----------------------------------------------------------------

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        if self.dead:
            raise self._dead_error("not running")
        body = {"prompts": [wire.encode_prompt(p) for p in prompts],
                "sampling": wire.encode_sampling(sampling)}  # fmt: skip
        self._unfinished += len(prompts)
        try:
            # Cancelled, httpx closes the connection; the worker sees its client leave and
            # aborts the prompts in its engine.
            async with self.pool.client() as client:
                response = await client.post("/generate", json=body)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            self._unfinished -= len(prompts)
        if response.status_code != 200:
            raise self._refusal(response.status_code, response.content)
        return wire.decode_generation(response.json())

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        if self.dead:
            raise self._dead_error("not running")
        body = {"prompt": wire.encode_prompt(prompt), "sampling": wire.encode_sampling(sampling)}
        self._unfinished += 1
        try:
            # Leaving early closes the unfinished response, hence its connection: the worker
            # aborts the request.
            async with (self.pool.client() as client,
                        client.stream("POST", "/stream", json=body) as response):  # fmt: skip
                if response.status_code != 200:
                    raise self._refusal(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    value = json.loads(line)
                    if "error" in value:
                        raise self._refusal(200, line.encode())
                    yield wire.decode_delta(value)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            self._unfinished -= 1

    async def _tokenizer(self, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with self.pool.client() as client:
                response = await (client.get(path) if body is None
                                  else client.post(path, json=body))  # fmt: skip
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code != 200:
            raise self._refusal(response.status_code, response.content)
        return response.json()

    async def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> Tokens:
        body = {"prompt": wire.encode_prompt(prompt), "add_special_tokens": add_special_tokens}
        return Tokens(**await self._tokenizer("/tokenize", body))

    async def detokenize(self, ids: Sequence[int]) -> str:
        return str((await self._tokenizer("/detokenize", {"ids": list(ids)}))["text"])

    async def tokenizer_info(self) -> dict[str, Any]:
        return dict(await self._tokenizer("/tokenizer_info"))

    def facts(self) -> dict[str, Any]:
        return self._facts

    @property
    def dead(self) -> bool:
        return self._died is not None or not self.worker.running

    @property
    def unfinished(self) -> int:
        return self._unfinished

    def shutdown(self) -> None:
        self.worker.stop()
