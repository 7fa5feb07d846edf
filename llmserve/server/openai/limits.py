"""MAX_BODY_BYTES for /v1/* in OpenAI's error shape: the app's BodySizeLimit middleware
(llmserve/server/limits.py) answers a too large body itself, before any route or handler,
so its 413 body is reshaped here for /v1 paths."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

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

    def error_payload(self, message: str) -> dict[str, Any]:
        if not _OPENAI_REQUEST.get():
            return super().error_payload(message)
        return error_body(413, message)
