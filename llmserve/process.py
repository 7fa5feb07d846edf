"""Child processes that serve HTTP: a free port, and a process group started, waited on
until healthy, and stopped with everything it spawned.

A server runs in its own process group; `stop()` asks its leader to stop, then ends what is
left of that group, so the engine workers it spawned go with it and nothing else is touched.
A busy port is never freed by killing its owner: callers take a free port, and a port someone
takes between our choice and the server's bind is answered by choosing another
(harness.launch.start_service, the engines' worker processes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from llmserve.errors import ServerError
from llmserve.paths import REPO_ROOT


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def health_code(url: str) -> int | None:
    """The status GET `url` answers, None while nothing answers."""
    try:
        return httpx.get(url, timeout=5.0).status_code
    except httpx.TransportError:
        return None


class ServerFailed(ServerError):
    """The server exited or did not become healthy in time."""


class ServerProcess:
    """A child process group serving HTTP; a context manager that always cleans up.

    `log_path` receives the server's stdout and stderr (appended), so a failure can be
    explained; `log_offset` is where this start's lines begin.
    """

    def __init__(
        self,
        command: Sequence[str],
        health_url: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path = REPO_ROOT,
        start_timeout: float = 900.0,
        inherit_output: bool = False,
    ) -> None:
        self.command = list(command)
        self.health_url = health_url
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path
        self.log_offset = 0
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.inherit_output = inherit_output  # True: its output goes where ours goes
        self.process: subprocess.Popen[bytes] | None = None
        self.health_codes: list[int] = []  # what / answered while we waited, for diagnosis

    def start(self) -> ServerProcess:
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log: Any = subprocess.DEVNULL
        if self.inherit_output:
            log = None
        elif self.log_path:
            log = open(self.log_path, "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=None if self.inherit_output else subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills only what we own
            )
        finally:
            if log not in (None, subprocess.DEVNULL):
                log.close()
        try:
            self.wait_healthy()
        except BaseException:  # Ctrl-C or SIGTERM while waiting: leave nothing running
            self.stop()
            raise
        return self

    what = "server"  # how failures name it
    poll_s = 1.0  # seconds between readiness checks

    def ready(self) -> bool:
        """Whether it serves: GET health_url is 200 (subclasses check other signs)."""
        code = health_code(self.health_url)
        if code is None:
            return False
        self.health_codes.append(code)
        return code == 200

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            # Waiting on the process doubles as the poll interval and notices an early exit.
            try:
                exit_code = self.process.wait(timeout=self.poll_s)
            except subprocess.TimeoutExpired:
                continue
            self.stop()  # its children (engine workers) may have outlived it
            raise ServerFailed(
                f"{self.what} exited with code {exit_code} before it was ready{self._log_hint()}"
            )
        self.stop()
        raise ServerFailed(
            f"{self.what} not ready after {self.start_timeout:.0f} s{self._log_hint()}"
        )

    def log_text(self) -> str:
        """What this start of the server wrote to its log so far."""
        if not self.log_path or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as file:
            file.seek(self.log_offset)
            return file.read().decode(errors="replace")

    def _log_hint(self) -> str:
        tail = self.log_text().splitlines()[-15:]
        return f"; log {self.log_path}:\n" + "\n".join(tail) if tail else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the leader, which stops what it started (`llmserve serve` drains, then
        shuts its engine down); after it exited, or `timeout` seconds, SIGKILL whatever is
        left of the group. Returns the leader's exit code. (The whole group signalled at
        once, vLLM's engine processes died before the server closed them, and Python's
        resource tracker reported "leaked shared_memory objects" on every stop.)"""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        # Children (engine workers) can outlive the leader; the group is still ours.
        self._signal_group(signal.SIGKILL)
        self.process.wait()
        return self.process.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # the group already ended
            os.killpg(self.process.pid, sig)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
