"""MAX_BODY_BYTES for /v1/* in OpenAI's error shape: the app's BodySizeLimit middleware
(llmserve/server/limits.py) answers a too large body itself, before any route or handler,
so its 413 body is reshaped here for /v1 paths."""

from __future__ import annotations

import json
from contextvars import ContextVar

from llmserve.server.limits import BodySizeLimit, Receive, Scope, Send
from llmserve.server.openai.errors import error_body, is_openai_path

# Whether the request being answered is a /v1 one (each request runs in its own task, with
# its own copy of the context).
_OPENAI_REQUEST: ContextVar[bool] = ContextVar("openai_request", default=False)


class ShapedBodySizeLimit(BodySizeLimit):
    """BodySizeLimit whose 413 is {"error": {...}} on /v1/* and {"error": "..."} elsewhere."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _OPENAI_REQUEST.set(
            scope["type"] == "http" and is_openai_path(str(scope.get("path", "")))
        )
        try:
            await super().__call__(scope, receive, send)
        finally:
            _OPENAI_REQUEST.reset(token)

    @staticmethod
    async def _refuse(send: Send, message: str) -> None:
        if not _OPENAI_REQUEST.get():
            await BodySizeLimit._refuse(send, message)
            return
        body = json.dumps(error_body(413, message)).encode()
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
