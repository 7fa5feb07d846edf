"""`shielded` holds SIGINT/SIGTERM whichever thread the kernel hands them to, and raises one
afterwards; a benchmark system's stop runs under it (the tools' end-to-end signal tests are
tests/tools/test_tool_signals.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from llmserve.bench.systems import System
from llmserve.harness.signals import interrupts_raise, shielded


class Sender:
    """A thread started before the shield (as asyncio's to_thread workers are), so that it
    does not inherit a mask the main thread sets; it sends the process a signal on demand."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.go, self.sent = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        self.go.wait()
        os.kill(os.getpid(), self.signum)
        self.sent.set()

    def send(self) -> None:
        self.go.set()
        self.thread.join()
        assert self.sent.is_set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_shielded_is_raised_after_it(signum: int) -> None:
    sender = Sender(signum)
    finished = False
    with pytest.raises(KeyboardInterrupt), interrupts_raise(), shielded():
        sender.send()
        for _ in range(1000):  # bytecodes, at each of which a pending handler would run
            pass
        finished = True
    assert finished


def test_handlers_are_restored_after_shielded() -> None:
    with interrupts_raise():
        raising = signal.getsignal(signal.SIGTERM)
        with shielded():
            assert signal.getsignal(signal.SIGTERM) is not raising
        assert signal.getsignal(signal.SIGTERM) is raising


class Stopping(System):
    """A system whose stop is signalled midway (the second Ctrl-C of a user)."""

    name = "stopping"
    rows = ()

    def __init__(self) -> None:  # no Context: nothing is started
        self.steps: list[str] = []

    @property
    def pid(self) -> int | None:
        return None

    async def _start(self) -> None:
        self.steps.append("started")

    async def stop(self) -> None:
        self.steps.append("stopping")
        await asyncio.to_thread(os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0)
        self.steps.append("stopped")

    async def throughput(self, row: str, batch: object) -> object:  # type: ignore[override]
        raise NotImplementedError

    async def latency(self, batch: object, first_token: object) -> object:  # type: ignore[override]
        raise NotImplementedError


def test_a_signal_during_a_system_stop_waits_for_the_stop() -> None:
    system = Stopping()

    async def use() -> None:
        async with system:
            pass

    with pytest.raises(KeyboardInterrupt), interrupts_raise():
        asyncio.run(use())
    assert system.steps == ["started", "stopping", "stopped"]
