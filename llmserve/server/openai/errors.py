"""OpenAI's error shape for /v1/*: {"error": {"message", "type", "param", "code"}}.

Every error a /v1 path answers has it, whatever raised it (a bad field, a missing key, an
unknown model, a body over MAX_BODY_BYTES, an unknown path under /v1): the app's handlers
(llmserve/server/errors.py) ask `is_openai_path` and answer with `openai_error`. Clients
such as the openai SDK read `error.message` from it to build their exception.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PREFIX = "/v1/"

# OpenAI's `type` by status (what its API answers; the SDK maps statuses, not types).
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    503: "server_error",
    504: "timeout_error",
}

# The body as a JSON schema (OpenAPI responses of /v1 operations refer to it).
OPENAI_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "One line naming the problem."},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"], "description": "The field at fault."},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}

MEANINGS = {
    400: "A bad request: not JSON, a field of the wrong type or out of range (`param` names "
    "it), an unsupported option (best_of > 1, echo with stream), more choices "
    "(n) than served, or a prompt over MAX_MODEL_LEN.",
    401: "API_KEY is set and the Authorization header does not carry it.",
    404: "No such model (code model_not_found), or no such path.",
    405: "The path does not take this method.",
    413: "The body is over MAX_BODY_BYTES.",
    503: "The engine is loading or dead, or the server is at capacity (Retry-After).",
    504: "The request took longer than REQUEST_TIMEOUT.",
}


class OpenAIError(Exception):
    """A /v1 client error: status, message, the field at fault and a code."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


# vLLM's tokenizer endpoints sit beside /v1 and answer errors in OpenAI's shape too.
TOKENIZER_PATHS = ("/tokenize", "/detokenize", "/tokenizer_info")


def is_openai_path(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/") or path in TOKENIZER_PATHS


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status, headers=headers)


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with OpenAI's error body."""
    return {
        status: {
            "description": MEANINGS[status],
            "content": {"application/json": {"schema": OPENAI_ERROR_BODY}},
        }
        for status in statuses
    }
