"""HTTP the benchmark makes: /v1/completions of vllm serve, and the concurrent users that
send it (and this service's /predict, whose call is llmserve.harness.client.post_predict).

Each call is timed on the client's monotonic clock, from send to the whole body received.
Output tokens come from the servers' own counts (X-Output-Tokens; usage.completion_tokens),
both the length of the engine's output token ids, as the offline systems count them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from llmserve.connections import single_connection_client
from llmserve.errors import ServerError

T = TypeVar("T")
REQUEST_TIMEOUT = httpx.Timeout(3600.0, connect=30.0)


@dataclass(frozen=True)
class Reply:
    """One answered /v1/completions call."""

    seconds: float
    output_tokens: int  # usage.completion_tokens
    prompt_tokens: int | None = None  # usage.prompt_tokens


def completion_body(
    model: str,
    prompt: str | list[str] | list[int] | list[list[int]],
    max_tokens: int,
    sampling: dict[str, Any],
) -> dict[str, Any]:
    """An OpenAI completions body with vLLM's extra sampling fields, unset ones left out."""
    body = {key: value for key, value in sampling.items() if value is not None}
    body.update(model=model, prompt=prompt, max_tokens=max_tokens)
    return body


async def completion(client: httpx.AsyncClient, body: dict[str, Any]) -> Reply:
    """One /v1/completions call (templated text or token ids in)."""
    start = time.perf_counter()
    response = await client.post("/v1/completions", json=body)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise ServerError(
            f"/v1/completions answered {response.status_code}: {response.text[:300]}"
        )
    usage = response.json()["usage"]
    return Reply(
        seconds=seconds,
        output_tokens=int(usage["completion_tokens"]),
        prompt_tokens=int(usage["prompt_tokens"]),
    )


# Below uvicorn's default keep-alive (5 s, vllm serve's too), so that our side retires idle
# connections: a server's close that crosses our next request on the wire is a reset (ReadError).
KEEPALIVE_SECONDS = 2.0


def async_client(base_url: str) -> httpx.AsyncClient:
    """A client of one connection; the timeout is generous because a whole list request on a
    slow CPU takes minutes."""
    return single_connection_client(base_url, REQUEST_TIMEOUT, KEEPALIVE_SECONDS)


class Users:
    """C concurrent users of one server, each with a connection of its own, each sending its
    next request when the last one is answered (`async with Users(url, c) as users`).

    Not one pool shared by all (llmserve/connections.py): at C=256 on 2 cores the
    shared pool spent seconds matching requests to connections while answered connections sat
    idle past the server's keep-alive, which then reset them.
    """

    def __init__(self, base_url: str, count: int) -> None:
        self.clients = [async_client(base_url) for _ in range(count)]

    async def __aenter__(self) -> Users:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))

    async def run(self, calls: Sequence[Callable[[httpx.AsyncClient], Awaitable[T]]]) -> list[T]:
        """Every call once, as the users are free; results in call order. The first failure
        stops the other users and is raised."""
        results: list[Any] = [None] * len(calls)
        pending = iter(range(len(calls)))  # shared: each user takes the next index

        async def user(client: httpx.AsyncClient) -> None:
            for index in pending:
                results[index] = await calls[index](client)

        tasks = [asyncio.create_task(user(client)) for client in self.clients[: len(calls)]]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return results
