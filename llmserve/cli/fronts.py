"""API_SERVERS > 1: several HTTP fronts on one port in front of shared engine processes.

`llmserve serve` becomes a supervisor:
- it starts API_SERVERS front processes (`llmserve serve --front-of JSON`), each binding the
  port with SO_REUSEPORT, so the kernel spreads connections over them; they answer 503
  ("loading") until the engines are ready, as one server does;
- it starts the ENGINE_REPLICAS engines, one after another, and every front attaches to all
  of them (engines/attach.py): for vLLM, engine cores of which each front runs its own
  client (engines/vllm/cores.py); for llama.cpp, engine worker processes
  (llmserve.engines.process.worker) the fronts reach over HTTP;
- it waits. SIGTERM or SIGINT: each front drains (SHUTDOWN_GRACE_SECONDS) and exits, then
  the engines stop; exit 0. An engine that dies, or a front that ends on its own (it saw a
  worker die: the fronts answer 503 and exit 1), ends the rest: exit 1, or the front's own
  non-zero code.

Why: one Python process parses, validates and answers every request; vLLM's answer to that
is the same, several API server processes (`vllm serve --api-server-count`). Measured on an
H100 (docs/replicas-and-gpus.md): with two engines, fronts bring concurrent singles to the
list's throughput; one engine stays bound by vLLM's own client work in its worker. A shared
listening socket was not used: asyncio accepts up to 100 queued connections per wake-up, so
one front could take a whole burst of clients.

The fronts and llama.cpp's worker processes end with this process (a pidfd watch), even a
SIGKILLed one; vLLM's engine cores, started by vLLM's launcher, stay in this process group,
which the tools stop as one (as a single `llmserve serve`'s engine core).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmserve.engines.attach import SharedEngines
    from llmserve.settings import Settings

FRONT_FLAG = "--front-of"  # the hidden `llmserve serve` flag that makes a process a front
POLL_S = 0.25  # how often the supervisor looks at its children


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket | None:
    """A TCP socket bound to host:port (SO_REUSEPORT: shared with the other fronts), or None
    after one line on stderr saying why the port cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(f"error: cannot serve on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return None
    return sock


class Stop(Exception):
    """SIGTERM or SIGINT reached the supervisor."""


def raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def serve_fronts(settings: Settings) -> int:
    """Supervise API_SERVERS fronts over ENGINE_REPLICAS shared engines (module docstring);
    returns the exit code."""
    from llmserve.engines.attach import encode, shared_engines
    from llmserve.errors import ExitCode
    from llmserve.model import resolve_model_dir

    model_dir = resolve_model_dir(settings)  # ModelNotFound before anything starts
    # Another server on the port would silently share it with SO_REUSEPORT fronts.
    probe = listening_socket(settings.host, settings.port, reuse_port=False)
    if probe is None:
        return int(ExitCode.FAILED)
    probe.close()
    engines: SharedEngines = shared_engines(settings, model_dir, settings.api_servers)
    metrics_dir = tempfile.mkdtemp(prefix="llmserve-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    fronts: list[subprocess.Popen[bytes]] = []
    previous = {sig: signal.signal(sig, raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = int(ExitCode.OK)
    try:
        for front in range(settings.api_servers):
            command = [sys.executable, "-m", "llmserve", "serve",
                       FRONT_FLAG, encode(engines.attachments(front)),
                       "--host", settings.host, "--port", str(settings.port),
                       "--exit-with-parent", str(os.getpid())]  # fmt: skip
            fronts.append(subprocess.Popen(command, env=env, start_new_session=True))
        print(f"llmserve serve: {len(fronts)} HTTP fronts (pids "
              f"{', '.join(str(f.pid) for f in fronts)}) on port {settings.port}; starting "
              f"{settings.engine_replicas} engine(s)", file=sys.stderr, flush=True)  # fmt: skip
        engines.start()
        code = wait_for_a_front(fronts, engines)
    except Stop:
        pass
    except Exception as exc:  # an engine that failed to start: the fronts cannot serve
        print(f"error: the engine failed to start: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        code = int(ExitCode.FAILED)
    finally:
        with contextlib.suppress(Stop):  # a second signal does not cut the shutdown short
            stop_fronts(fronts, settings.shutdown_grace_seconds + 10)
            engines.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return code


def wait_for_a_front(fronts: list[subprocess.Popen[bytes]], engines: SharedEngines) -> int:
    """Block until a front or an engine ends (or Stop); the code the supervisor then exits
    with."""
    from llmserve.errors import ExitCode

    while True:
        for front in fronts:
            code = front.poll()
            if code is not None:
                print(f"llmserve serve: front {front.pid} ended with {code}; stopping",
                      file=sys.stderr, flush=True)  # fmt: skip
                return code if code > 0 else int(ExitCode.FAILED)
        dead = engines.dead()
        if dead is not None:
            print(f"llmserve serve: {dead}; stopping (exit 1)", file=sys.stderr, flush=True)
            return int(ExitCode.FAILED)
        time.sleep(POLL_S)


def stop_fronts(fronts: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM each front's group (each drains its requests), then SIGKILL what lingers."""
    for front in fronts:
        if front.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(front.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for front in fronts:
        with contextlib.suppress(subprocess.TimeoutExpired):
            front.wait(timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(front.pid, signal.SIGKILL)
        front.wait()
