"""Server-sent events for stream=true: `data: <chunk JSON>\n\n` per step, `data: [DONE]\n\n`
at the end.

The first delta is awaited by the route (so a too long prompt, a gone client or a dead
engine still get a status code); EventStream sends the rest. When the client disconnects,
Starlette cancels the sending task, and the cancellation reaches the engine stream's await
(vLLM aborts a cancelled request). Whatever happens, EventStream's cleanup closes the engine
stream and releases the request's admission once the response ends: no orphan generation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llmserve.engines.base import Delta, Engine
from llmserve.engines.guard import engine_failure
from llmserve.server.openai.errors import error_body
from llmserve.server.openai.logprobs import Streamed
from llmserve.server.openai.objects import Answer

DONE = "data: [DONE]\n\n"


def event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def next_delta(stream: AsyncIterator[Delta]) -> Delta | None:
    return await anext(stream, None)


async def first_delta(engine: Engine, stream: AsyncIterator[Delta]) -> Delta | None:
    """The stream's first delta; an engine that died without saying so raises EngineDead."""
    try:
        return await next_delta(stream)
    except Exception as error:
        failure = engine_failure(engine, error)
        if failure is error:
            raise
        raise failure from error


async def close(stream: AsyncIterator[Any]) -> None:
    """Close an async generator now (a stream of the Engine Protocol is one)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def events(
    answer: Answer,
    first: Delta | None,
    stream: AsyncIterator[Delta],
    engine: Engine,
    include_usage: bool,
    deadline: float | None,
    n: int = 1,
    logprobs: Streamed | None = None,
) -> AsyncIterator[str]:
    """The chunks of one streamed answer of `n` choices, starting from its already read first
    delta: each chunk names its choice (`index`), and each choice gets its own finishing
    chunk. With `logprobs`, a delta's chunk carries its tokens' logprobs (a delta with tokens
    but no text yet, held back by the engine, still gets its chunk). Past `deadline` (loop
    time; REQUEST_TIMEOUT) or on an engine failure: an error event, then [DONE]."""
    if answer.chat:
        for index in range(n):
            yield event(answer.chunk("", role=True, index=index))
    delta = first
    last: dict[int, Delta] = {}  # each choice's latest delta: its running token counts
    finished: set[int] = set()
    try:
        while delta is not None:
            last[delta.index] = delta
            if delta.text or (logprobs is not None and delta.logprobs):
                shaped = None if logprobs is None else logprobs(delta.logprobs or [], delta.index)
                yield event(answer.chunk(delta.text, index=delta.index, logprobs=shaped))
            if delta.finished:
                finished.add(delta.index)
                yield event(answer.chunk(finish_reason=delta.finish_reason, index=delta.index))
                if len(finished) == n:
                    break
            async with asyncio.timeout_at(deadline):
                delta = await next_delta(stream)
        for index in range(n):  # the engine's stream ended without finishing these
            if index not in finished:
                yield event(answer.chunk(finish_reason="stop", index=index))
        if include_usage:
            prompt_tokens = max((d.prompt_tokens for d in last.values()), default=0)
            completion_tokens = sum(d.output_tokens for d in last.values())
            yield event(answer.usage_chunk(prompt_tokens, completion_tokens))
    except TimeoutError:
        yield event(error_body(504, "request took longer than REQUEST_TIMEOUT; aborted"))
    except Exception as error:  # the status line is sent: the error can only be an event
        failure = engine_failure(engine, error)
        yield event(error_body(503 if engine.dead else 500, f"{type(failure).__name__}: "
                               f"{failure}"))  # fmt: skip
    yield DONE


class EventStream(StreamingResponse):
    """text/event-stream whose `cleanup` always runs when the response ends, also when the
    client went away before the first byte was sent."""

    def __init__(
        self, body: AsyncIterator[str], cleanup: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.cleanup()
