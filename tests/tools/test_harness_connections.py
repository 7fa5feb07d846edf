"""ClientPool (llmserve/connections.py) over real HTTP against a small uvicorn app: a
connection per request in flight, kept alive and lent again, and a client whose request was
cancelled is closed instead of lent again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from llmserve.connections import ClientPool
from tests.asgi import read_body, send_json, serving

IN_FLIGHT = 6
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class GateApp:
    """Answers each request with its client port once `expected` requests are in flight
    together (or after a timeout, so that a broken pool fails the test instead of hanging)."""

    def __init__(self) -> None:
        self.expected = IN_FLIGHT
        self.inflight = 0
        self.full = asyncio.Event()
        self.arrived = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        self.inflight += 1
        self.arrived.set()
        if self.inflight >= self.expected:
            self.full.set()
        try:
            await asyncio.wait_for(self.full.wait(), timeout=10)
        finally:
            self.inflight -= 1
        await send_json(send, 200, {"port": scope["client"][1]})


async def post(pool: ClientPool) -> int:
    async with pool.client() as client:
        response = await client.post("/", json={})
    return int(response.json()["port"])


def test_a_connection_per_request_in_flight_kept_and_lent_again() -> None:
    async def scenario() -> None:
        app = GateApp()
        async with serving(app) as url:
            pool = ClientPool(url, timeout=30)
            first = await asyncio.gather(*(post(pool) for _ in range(IN_FLIGHT)))
            assert len(set(first)) == IN_FLIGHT  # each its own connection
            app.full.clear()
            again = await asyncio.gather(*(post(pool) for _ in range(IN_FLIGHT)))
            assert set(again) == set(first)  # the same connections, kept alive
            assert pool.made == IN_FLIGHT
            await pool.aclose()

    asyncio.run(scenario())


def test_a_cancelled_request_closes_its_client() -> None:
    async def scenario() -> None:
        app = GateApp()
        async with serving(app) as url:
            pool = ClientPool(url, timeout=30)
            app.expected = 2  # never reached by one request: it waits at the gate
            waiting = asyncio.create_task(post(pool))
            await asyncio.wait_for(app.arrived.wait(), timeout=10)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            assert pool._free == [] and pool.made == 1  # closed, not lent again
            app.full.set()  # the abandoned handler answers into a closed connection
            app.expected = 1
            assert await post(pool) > 0
            assert pool.made == 2
            await pool.aclose()

    asyncio.run(scenario())
