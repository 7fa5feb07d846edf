"""Waiting in tests: poll an observable state until it holds, within a bound; never a sleep
that stands in for a state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fastapi import FastAPI


def wait_for(
    condition: Callable[[], object],
    what: str,
    timeout: float = 10.0,
    seen: Callable[[], object] | None = None,
) -> float:
    """Poll `condition()` (a cheap read) until it is true; returns the seconds it took. After
    `timeout` seconds the test fails naming `what`, and the last state `seen()` describes."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start >= timeout:
            last = f" (last seen: {seen()})" if seen is not None else ""
            pytest.fail(f"no {what} within {timeout:.0f} s{last}")
        time.sleep(0.01)
    return time.monotonic() - start


def wait_app_ready(app: FastAPI, timeout: float = 10.0) -> None:
    """Until the app's engine (the fake engine, loaded by its lifespan) is ready."""
    wait_for(lambda: app.state.service.state.value == "ok", "ready fake engine", timeout)
