"""Start a server in its own process group, wait until it is healthy, stop only that group.

Used by the tests, the judge's --start, the benchmark and the tuner: anything that owns a
server for a while. A busy port is never freed by killing its owner: callers take a free port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerFailed(RuntimeError):
    """The server exited or did not become healthy in time."""


class ServerProcess:
    """A child process group serving HTTP; a context manager that always cleans up.

    `log_path` receives the server's stdout and stderr, so a failure can be explained.
    """

    def __init__(
        self,
        command: Sequence[str],
        health_url: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path = REPO_ROOT,
        start_timeout: float = 900.0,
    ) -> None:
        self.command = list(command)
        self.health_url = health_url
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.health_codes: list[int] = []  # what / answered while we waited, for diagnosis

    def start(self) -> ServerProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills only what we own
            )
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                try:
                    code = client.get(self.health_url).status_code
                    self.health_codes.append(code)
                    if code == 200:
                        return
                except httpx.TransportError:
                    pass
                # Waiting on the process doubles as the poll interval and notices an early exit.
                try:
                    exit_code = self.process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    continue
                raise ServerFailed(
                    f"server exited with code {exit_code} before it was healthy{self._log_hint()}"
                )
        self.stop()
        raise ServerFailed(f"server not healthy after {self.start_timeout:.0f} s{self._log_hint()}")

    def _log_hint(self) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
        return f"; log {self.log_path}:\n" + "\n".join(tail)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM our process group, then SIGKILL it if it lingers. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait()
        # Children (engine workers) can outlive the leader; the group is still ours.
        self._signal_group(signal.SIGKILL)
        return self.process.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # the group already ended
            os.killpg(self.process.pid, sig)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def uvicorn_command(host: str, port: int) -> list[str]:
    """The command that serves this project's app with the current interpreter."""
    return [sys.executable, "-m", "uvicorn", "serve:app", "--host", host, "--port", str(port)]
