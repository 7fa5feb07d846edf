"""Pieces for the small scripted ASGI apps that client tests serve with real uvicorn."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Send


async def read_body(receive: Receive) -> bytes:
    """The whole request body, however many chunks it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """One JSON response with `headers` besides its content type."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
