"""Starting and stopping this project's service: the one way every tool and test launches it.

The server runs in its own process group (llmserve.process.ServerProcess), so stopping it
stops the engine workers it spawned and nothing else. A port someone takes between our choice
and the server's bind is answered by choosing another.

Every tool starts this project's service the same way, `python -m llmserve serve` with the
settings in the environment, so a measured server is always the one `run_model.sh` serves
(`llmserve serve` applies the engine's launch environment, e.g. vLLM's CPU defaults, itself).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.process import ServerFailed, ServerProcess, free_port

PORT_ATTEMPTS = 3  # a free port can be taken before our server binds it: choose again


def serve_command(host: str, port: int) -> list[str]:
    """The command that serves this project's app with the current interpreter; the server
    ends with this process (llmserve.lifeline), even when this one is SIGKILLed."""
    return [sys.executable, "-m", "llmserve", "serve", "--host", host, "--port", str(port),
            "--exit-with-parent", str(os.getpid())]  # fmt: skip


def env_value(value: Any) -> str | None:
    """A settings value as its environment variable spells it; None means unset."""
    import json

    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def settings_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Settings (field name or variable name = value) as the service's environment variables;
    a None value is left out (the setting's default applies)."""
    env = {}
    for name, value in overrides.items():
        text = env_value(value)
        if text is not None:
            env[name.upper()] = text
    return env


def without_settings(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """`environ` without any variable of the Settings class, and the names removed: for a
    server that must run exactly the settings it is given."""
    from llmserve.settings import Settings

    fields = set(Settings.model_fields)
    dropped = sorted(k for k in environ if k.lower() in fields)
    return {k: v for k, v in environ.items() if k.lower() not in fields}, dropped


@dataclass
class Service:
    """A running `llmserve serve` this process owns."""

    url: str
    port: int
    server: ServerProcess

    def stop(self) -> int | None:
        return self.server.stop()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_service(
    settings: Mapping[str, Any] | None = None,
    *,
    log_path: Path | None = None,
    base_env: Mapping[str, str] | None = None,
    start_timeout: float = 900.0,
    host: str = "127.0.0.1",
    on_start: Callable[[ServerProcess], None] | None = None,
) -> Service:
    """Start `llmserve serve` on a free port of `host` with `settings` on top of `base_env`
    (default: this process's environment) and wait until `/` is 200.

    `on_start` is called with the server before it is waited on (e.g. to record its port or to
    let another thread stop it). Raises ServerFailed (exit code 4) with the log's tail.
    """
    env = {**(os.environ if base_env is None else base_env), **settings_env(settings or {})}
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port(host)
        url = f"http://{host}:{port}"
        server = ServerProcess(
            serve_command(host, port),
            health_url=url + "/",
            env={**env, "HOST": host, "PORT": str(port)},
            log_path=log_path,
            start_timeout=start_timeout,
        )
        if on_start is not None:
            on_start(server)
        try:
            server.start()
        except ServerFailed:
            server.stop()
            if "address already in use" in server.log_text().lower() and attempt < PORT_ATTEMPTS:
                continue  # someone took the port after we chose it: choose another
            raise
        return Service(url=url, port=port, server=server)
    raise AssertionError("unreachable")
