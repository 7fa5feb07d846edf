"""A child that ends with its parent: `exit_with_parent(pid)` SIGTERMs this process group once
the process `pid` has ended, however it ended (SIGKILL included).

Servers the tools start (`llmserve serve` under judge --start, bench, tune, quantize compare,
and each replica's worker process) run in process groups of their own, so that stopping one
stops its engine processes too; that also means a tool killed outright would leave them
running, holding the port and the device memory. A pidfd (Linux 5.3+) becomes readable when
its process exits: one daemon thread waits on it, no polling.

A server of another project (`vllm serve` under `llmserve bench`) has no such flag: it runs
under `python -m llmserve.lifeline PID CMD...` (lifeline_command), in the wrapper's group.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence


def exit_with_parent(parent_pid: int) -> None:
    """End this process group when `parent_pid` ends (at once if it already has)."""
    try:
        pidfd = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os.killpg(os.getpgrp(), signal.SIGTERM)
        return

    def watch() -> None:
        select.select([pidfd], [], [])  # readable once the parent has exited
        os.killpg(os.getpgrp(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def lifeline_command(parent_pid: int) -> list[str]:
    """The prefix that runs a command with a lifeline to `parent_pid` (main below)."""
    return [sys.executable, "-m", "llmserve.lifeline", str(parent_pid)]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m llmserve.lifeline PID CMD...`: run CMD in this process group, and end the
    group when process PID ends; exits with CMD's status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].isdigit():
        print("usage: python -m llmserve.lifeline PID CMD [ARG...]", file=sys.stderr)
        return 2
    exit_with_parent(int(args[0]))
    child = subprocess.Popen(args[1:])
    for sig in (signal.SIGTERM, signal.SIGINT):  # a stop of this wrapper stops CMD
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    return child.wait()


if __name__ == "__main__":
    raise SystemExit(main())
