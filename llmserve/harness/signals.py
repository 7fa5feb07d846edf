"""Signals and the tools' common ending: SIGTERM unwinds like Ctrl-C, so every `finally`
(which stops the servers a tool started) runs; a `LlmserveError` ends the tool with one line
and its exit code."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from llmserve.errors import ExitCode, LlmserveError


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through `finally`, which stops our servers


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only; elsewhere, as a
    test's thread, signals cannot be handled and nothing changes)."""
    if not _on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while cleaning up or writing a record, so that a second Ctrl-C
    cannot leave a server running or half a line; they are delivered right after."""
    if not _on_main_thread():
        yield
        return
    signals = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_tool(
    tool: str, body: Callable[[], int], on_interrupt: Callable[[], str | None] | None = None
) -> int:
    """Run a tool's work: its own exit code, or one line and the code of what stopped it.

    `on_interrupt` may return a hint printed after "interrupted" (e.g. how to resume).
    """
    with sigterm_as_interrupt():
        try:
            return body()
        except LlmserveError as error:
            print(f"{tool}: error: {error}", file=sys.stderr)
            return int(error.exit_code)
        except KeyboardInterrupt:
            hint = on_interrupt() if on_interrupt else None
            print(f"{tool}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
            return int(ExitCode.INTERRUPTED)
