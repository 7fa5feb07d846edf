"""A child that ends with its parent: `exit_with_parent(pid)` SIGTERMs this process group once
the process `pid` has ended, however it ended (SIGKILL included).

Servers the tools start (`llmserve serve` under judge --start, bench, tune, quantize compare,
and each replica's worker process) run in process groups of their own, so that stopping one
stops its engine processes too; that also means a tool killed outright would leave them
running, holding the port and the device memory. A pidfd (Linux 5.3+) becomes readable when
its process exits: one daemon thread waits on it, no polling.
"""

from __future__ import annotations

import os
import select
import signal
import threading


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
