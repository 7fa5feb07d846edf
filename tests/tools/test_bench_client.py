"""The benchmark's concurrent users, over real HTTP against a small uvicorn app (no engine):
order of results, the concurrency bound, a connection per user, failure handling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from llmserve.bench.client import Users
from llmserve.errors import ServerError
from llmserve.harness.client import post_predict
from tests.asgi import read_body, send_json, serving

USERS = 8
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class EchoApp:
    """/predict that answers only once USERS requests are in flight together (or after a
    timeout, so that a broken client fails the test instead of hanging it)."""

    def __init__(self) -> None:
        self.inflight = 0
        self.most = 0
        self.full = asyncio.Event()
        self.ports: set[int] = set()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        prompt = json.loads(body)["prompt"]
        self.ports.add(scope["client"][1])
        self.inflight += 1
        self.most = max(self.most, self.inflight)
        if self.inflight == USERS:
            self.full.set()
        try:
            await asyncio.wait_for(self.full.wait(), timeout=10)
        finally:
            self.inflight -= 1
        status = 500 if prompt == "fail" else 200
        await send_json(send, status, {"response": prompt.upper()},
                        [(b"x-output-tokens", str(len(prompt)).encode())])


def test_users_answer_in_order_with_c_in_flight() -> None:
    prompts = [f"p{i}" for i in range(5 * USERS + 3)]

    async def scenario() -> None:
        app = EchoApp()
        async with serving(app) as url, Users(url, USERS) as users:
            replies = await users.run([lambda c, p=p: post_predict(c, p) for p in prompts])
        assert [r.output_tokens for r in replies] == [len(p) for p in prompts]
        assert app.most == USERS  # all users at once, never more
        assert len(app.ports) == USERS  # one kept-alive connection per user

    asyncio.run(scenario())


def test_first_failure_is_raised_and_stops_the_others() -> None:
    prompts = ["ok"] * (USERS - 1) + ["fail"] + ["ok"] * 50

    async def scenario() -> None:
        app = EchoApp()
        async with serving(app) as url, Users(url, USERS) as users:
            with pytest.raises(ServerError, match="500"):
                await users.run([lambda c, p=p: post_predict(c, p) for p in prompts])
            # The other users were cancelled: their clients are closed without errors below.
        assert app.inflight == 0

    asyncio.run(scenario())


def test_fewer_calls_than_users() -> None:
    async def scenario() -> None:
        async with Users("http://127.0.0.1:9", USERS) as users:

            async def call(client: httpx.AsyncClient) -> str:
                return str(client.base_url)

            assert await users.run([call, call]) == ["http://127.0.0.1:9", "http://127.0.0.1:9"]
            assert await users.run([]) == []

    asyncio.run(scenario())
