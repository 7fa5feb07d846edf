"""Exceptions -> JSON error responses, registered once on the app: every error body is
{"error": "<one line naming the problem>"}, but on /v1/* paths, which answer in OpenAI's shape
{"error": {"message", "type", "param", "code"}} (llmserve/server/openai/errors.py).

BadRequest: its own status (400, 413, 422); PromptTooLong: 413; PromptRejected: 400; a
loading or dead engine: 503.
FastAPI's and Starlette's own errors answer in the same shape: an unknown path (404), a wrong
method (405, with its Allow header), a RequestValidationError (422), and an unexpected
exception (500, naming only its type: the traceback goes to the log, not to the client).
On /v1/* a RequestValidationError, a body that is not JSON and a too long prompt are 400s
(what OpenAI's API answers), and OpenAIError carries its own status, param and code.
`ERROR_BODY` and `error_responses` document that shape in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmserve.engines.base import EngineDead, PromptRejected, PromptTooLong, StructuredRefused
from llmserve.server.openai.errors import OpenAIError, is_openai_path, openai_error
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


def respond(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    """The error in the shape of the request's path: OpenAI's on /v1/*, ours elsewhere."""
    if is_openai_path(request.url.path):
        return openai_error(status, message, param, code, headers)
    return error(status, message, headers)


def openai_status(request: Request, status: int) -> int:
    """/v1/* answers 400 where /predict answers 413 or 422 for the body's content (OpenAI's
    API has one status for a bad request); the body size limit stays 413 everywhere."""
    return 400 if is_openai_path(request.url.path) and status == 422 else status


async def bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadRequest)
    return respond(request, openai_status(request, exc.status), str(exc))


async def openai_request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenAIError)
    return openai_error(exc.status, str(exc), exc.param, exc.code)


async def prompt_too_long(request: Request, exc: Exception) -> JSONResponse:
    if is_openai_path(request.url.path):  # OpenAI's context_length_exceeded is a 400
        return openai_error(400, str(exc), "messages", "context_length_exceeded")
    return error(413, str(exc))


async def prompt_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PromptRejected)
    return respond(request, 400, str(exc), param=exc.param)


async def structured_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StructuredRefused)
    if is_openai_path(request.url.path):
        return openai_error(400, str(exc), exc.param.split(".")[0].split("[")[0])
    return error(400, str(exc))


async def engine_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return respond(request, 503, str(exc))


async def engine_dead(request: Request, exc: Exception) -> JSONResponse:
    service: Service = request.app.state.service
    service.live_engine()  # health turns 503 "dead" at once, not at the next poll
    return respond(request, 503, f"engine is dead: {exc}")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404 no such path, 405 wrong method, ...) in our shape."""
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"no such path: {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return respond(request, exc.status_code, message, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation (routes here read the raw body, so only a future typed
    parameter can raise it) as one line: the first problem, where it is. On /v1/* a 400 whose
    `param` is the field."""
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if not problems:
        return respond(request, openai_status(request, 422), "invalid request")
    first = problems[0]
    loc = [str(part) for part in first.get("loc", ())]
    where = ".".join(loc)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    param = loc[1] if len(loc) > 1 else None  # after "body" / "query" / ...
    return respond(
        request,
        openai_status(request, 422),
        f"{where}: {first.get('msg', 'invalid')}{more}",
        param=param,
    )


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: 500 in the same shape, naming only the exception's type. Starlette logs the
    traceback after this answers."""
    return respond(
        request, 500, f"internal server error ({type(exc).__name__}); see the server log"
    )


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(OpenAIError, openai_request_error)
    app.add_exception_handler(PromptTooLong, prompt_too_long)
    app.add_exception_handler(PromptRejected, prompt_rejected)
    app.add_exception_handler(StructuredRefused, structured_refused)
    app.add_exception_handler(EngineUnavailable, engine_unavailable)
    app.add_exception_handler(EngineDead, engine_dead)
