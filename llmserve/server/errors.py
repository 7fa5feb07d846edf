"""Exceptions -> JSON error responses, registered once on the app: every error body is
{"error": "<one line naming the problem>"}.

BadRequest: its own status (400, 413, 422); PromptTooLong: 413; a loading or dead engine: 503.
FastAPI's and Starlette's own errors answer in the same shape: an unknown path (404), a wrong
method (405, with its Allow header), a RequestValidationError (422), and an unexpected
exception (500, naming only its type: the traceback goes to the log, not to the client).
`ERROR_BODY` and `error_responses` document that shape in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmserve.engines.base import EngineDead, PromptTooLong
from llmserve.server.schema import BadRequest
from llmserve.server.state import EngineUnavailable, Service

# The one error body, as a JSON schema (the OpenAPI components refer to it).
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "One line naming the problem."}},
    "required": ["error"],
}

# What each documented status means, for the OpenAPI schema's response descriptions.
ERROR_MEANINGS = {
    400: "The body is not valid JSON, or not a JSON object.",
    404: "No such path.",
    405: "The path does not take this method.",
    413: "The body is over MAX_BODY_BYTES, a list is over MAX_BATCH_PROMPTS, or a prompt is "
    "over MAX_MODEL_LEN tokens.",
    422: "The JSON is not a valid request: a missing, empty or mistyped prompt, or text no "
    "tokenizer accepts (an unpaired surrogate).",
    503: "The engine is loading or dead, or the server is at capacity (Retry-After).",
    504: "The request took longer than REQUEST_TIMEOUT.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with the {"error": string} body."""
    return {
        status: {
            "description": ERROR_MEANINGS[status],
            "content": {"application/json": {"schema": ERROR_BODY}},
        }
        for status in statuses
    }


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadRequest)
    return error(exc.status, str(exc))


async def prompt_too_long(request: Request, exc: Exception) -> JSONResponse:
    return error(413, str(exc))


async def engine_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error(503, str(exc))


async def engine_dead(request: Request, exc: Exception) -> JSONResponse:
    service: Service = request.app.state.service
    service.live_engine()  # health turns 503 "dead" at once, not at the next poll
    return error(503, f"engine is dead: {exc}")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404 no such path, 405 wrong method, ...) in our shape."""
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"no such path: {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error(exc.status_code, message, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation (routes here read the raw body, so only a future typed
    parameter can raise it) as one line: the first problem, where it is."""
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if not problems:
        return error(422, "invalid request")
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error(422, f"{where}: {first.get('msg', 'invalid')}{more}")


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: 500 in the same shape, naming only the exception's type. Starlette logs the
    traceback after this answers."""
    return error(500, f"internal server error ({type(exc).__name__}); see the server log")


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(PromptTooLong, prompt_too_long)
    app.add_exception_handler(EngineUnavailable, engine_unavailable)
    app.add_exception_handler(EngineDead, engine_dead)
