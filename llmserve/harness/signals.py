"""Signals and the tools' common ending: SIGINT and SIGTERM both raise KeyboardInterrupt, so
every `finally` (which stops the servers a tool started) runs; a `LlmserveError` ends the tool
with one line and its exit code."""

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


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt (main thread only;
    elsewhere, as a test's thread, signals cannot be handled and nothing changes).

    SIGINT gets this handler too, not Python's default, for two reasons:
    - A process started from a non-interactive shell's background job (`cmd &`) inherits
      SIGINT ignored, and Python keeps an inherited SIG_IGN: such a tool ran a whole
      `quantize compare` through a Ctrl-C to its group and exited 0 (issue #28, reproduced
      with `bash -c 'python ... & wait'`; the same run in the foreground exited 130).
    - Under Python's default handler, `asyncio.run` turns SIGINT into a cancellation of its
      main task (code inside sees CancelledError, not an interrupt); raising here makes
      Ctrl-C take the path SIGTERM takes.
    """
    if not _on_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in INTERRUPTS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while cleaning up or writing a record, so that a second Ctrl-C
    cannot leave a server running or half a line; one that came is raised right after.

    The signals are deferred by handler, not blocked: a mask holds only the thread that sets
    it, and the kernel gives a process's signal to any thread that does not block it (an
    asyncio.to_thread worker, a client's reader), after which Python runs the raising handler
    on the main thread all the same (tests/unit/test_signals.py).
    """
    if not _on_main_thread():
        yield
        return
    came: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: came.append(signum))
                for sig in INTERRUPTS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if came:
            signal.raise_signal(came[0])


def run_tool(
    tool: str, body: Callable[[], int], on_interrupt: Callable[[], str | None] | None = None
) -> int:
    """Run a tool's work: its own exit code, or one line and the code of what stopped it;
    `tool` is its name as typed (`llmserve judge`), the prefix of every line it ends with.

    `on_interrupt` may return a hint printed after "interrupted" (e.g. how to resume).
    """
    with interrupts_raise():
        try:
            return body()
        except LlmserveError as error:
            print(f"{tool}: error: {error}", file=sys.stderr)
            return int(error.exit_code)
        except KeyboardInterrupt:
            hint = on_interrupt() if on_interrupt else None
            print(f"{tool}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
            return int(ExitCode.INTERRUPTED)
