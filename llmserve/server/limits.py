"""The body-size limit (MAX_BODY_BYTES), enforced before any route reads or parses a body.

A pure ASGI middleware: a request whose Content-Length is over the limit gets its 413 at
once, without a byte of its body read; one without a Content-Length (chunked) is counted as
it streams, and the read that goes over raises BodyTooLarge, which the app's BadRequest
handler answers with the same 413. Either way nothing larger than the limit is ever held in
memory or handed to json.loads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llmserve.server.schema import BadRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def too_large_message(limit: int, size: int | None = None) -> str:
    """`size`: the declared Content-Length; None when the count went over while streaming."""
    got = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return f"request body is too large: {got}; at most {limit} (MAX_BODY_BYTES)"


class BodyTooLarge(BadRequest):
    """The body went over MAX_BODY_BYTES: a 413."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(too_large_message(limit, size), status=413)


def content_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when absent or not a number (the server's HTTP
    parser refuses a malformed one before the app sees it; counting covers the rest)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodySizeLimit:
    """Refuses request bodies over `limit` bytes with 413 {"error": ...}."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send, too_large_message(self.limit, declared))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as error:  # read outside a route (its handler did not see it)
            if started:
                raise
            await self._refuse(send, str(error))

    def error_payload(self, message: str) -> dict[str, Any]:
        """The 413's JSON body (the app's error shape; a subclass may answer another)."""
        return {"error": message}

    async def _refuse(self, send: Send, message: str) -> None:
        body = json.dumps(self.error_payload(message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the unread rest of the body is not wanted
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
