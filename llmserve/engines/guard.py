"""What every HTTP caller of an engine shares: engine errors normalized, and a generation that
runs as a task, cancelled when the client disconnects or a timeout (REQUEST_TIMEOUT) passes.

Cancelling an engine's generate (or closing its stream) aborts what entered the engine (the
Engine Protocol's contract), so a gone client or a timeout leaves no orphan work behind.
The server's /predict and /v1/* routes and the engine worker process (engines.process) use it;
what the server answers then (499, Retry-After) is the server's (server/routes/guard.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request

from llmserve.engines.base import Engine, EngineDead, EngineError, Generation, Prompt, Sampling

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work was aborted."""


class TimedOut(Exception):
    """The request took longer than REQUEST_TIMEOUT; the work was aborted."""

    def __init__(self, timeout: float) -> None:
        super().__init__(
            f"request took longer than REQUEST_TIMEOUT={timeout:g} s; its generation was aborted"
        )


async def client_gone(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Returns when the client disconnects. Call only once the body is read: the server's next
    message is then `http.disconnect` (uvicorn sends it when the connection closes; it never
    sends one for a request whose response is still due)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def engine_failure(engine: Engine, error: Exception) -> Exception:
    """The exception to raise for an engine call that failed: EngineError as it is (the app's
    handlers answer PromptTooLong and EngineDead), EngineDead for an engine that died without
    saying so, anything else unchanged."""
    if not isinstance(error, EngineError) and engine.dead:
        return EngineDead(str(error))
    return error


async def generate(engine: Engine, prompts: list[Prompt], sampling: Sampling) -> Generation:
    try:
        return await engine.generate(prompts, sampling)
    except Exception as exc:
        failure = engine_failure(engine, exc)
        if failure is exc:
            raise
        raise failure from exc


async def guarded(request: Request, work: Coroutine[Any, Any, T], timeout: float | None) -> T:
    """`work`'s result; ClientGone if the client disconnects first, TimedOut after `timeout`
    seconds (None: no limit). Either way, and when this call is cancelled itself (server
    shutdown), `work` is cancelled and its cancellation has run before this returns."""
    task = asyncio.create_task(work)
    watcher = asyncio.create_task(client_gone(request.receive))
    try:
        done, _ = await asyncio.wait(
            {task, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()  # the engine aborts the prompts that entered it
    if task not in done:
        await asyncio.gather(task, return_exceptions=True)  # the abort has run
        if watcher in done:
            raise ClientGone()
        assert timeout is not None
        raise TimedOut(timeout)
    return task.result()  # raises the engine's error for the handlers
