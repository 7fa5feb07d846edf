"""Exceptions -> JSON error responses, registered once on the app: every error body is
{"error": "<one line naming the problem>"}.

BadRequest: its own status (400, 413, 422); PromptTooLong: 413; a loading or dead engine: 503.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llmserve.engines.base import EngineDead, PromptTooLong
from llmserve.server.schema import BadRequest
from llmserve.server.state import EngineUnavailable, Service


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(PromptTooLong, prompt_too_long)
    app.add_exception_handler(EngineUnavailable, engine_unavailable)
    app.add_exception_handler(EngineDead, engine_dead)
