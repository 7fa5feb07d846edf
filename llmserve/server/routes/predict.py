"""`POST /predict` {"prompt": str | [str, ...]} -> {"response": str | [str, ...]}, with the
engine-side timing headers a judge uses to leave HTTP time out.

Load and faults: a request is admitted only while the prompts waiting over all requests stay
within MAX_WAITING_PROMPTS (else a fast 503 with Retry-After); its generation runs as a task
that is cancelled when the client disconnects or REQUEST_TIMEOUT passes (504). Cancelling an
engine's generate aborts what entered the engine (the Engine Protocol's contract).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from llmserve.engines.base import Engine, EngineDead, EngineError, Generation, Prompt, Sampling
from llmserve.server.schema import parse_predict
from llmserve.server.state import EngineDep, Overloaded, ServiceDep

router = APIRouter()

# Seconds a refused client is told to wait (Retry-After). Short: prompts finish continuously,
# so room frees up within seconds under a load that only just overflows.
RETRY_AFTER_S = 1
# The status a request gets when its client is gone (nginx's "client closed request"): nobody
# reads it, but the access log shows the request ended without an answer.
CLIENT_CLOSED = 499


def timing_headers(result: Generation) -> dict[str, str]:
    headers = {
        "X-Engine-Seconds": f"{result.engine_seconds:.6f}",
        "X-Output-Tokens": str(result.output_tokens),
    }
    if result.ttft_seconds is not None:
        headers["X-Engine-TTFT"] = f"{result.ttft_seconds:.6f}"
    return headers


async def client_gone(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Returns when the client disconnects. Call only once the body is read: the server's next
    message is then `http.disconnect` (uvicorn sends it when the connection closes; it never
    sends one for a request whose response is still due)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def generate(
    engine: Engine, prompts: list[Prompt], sampling: Sampling
) -> Generation:
    try:
        return await engine.generate(prompts, sampling)
    except EngineError:
        raise  # PromptTooLong, EngineDead: the app's handlers answer
    except Exception as exc:
        if engine.dead:  # an engine that does not say so itself
            raise EngineDead(str(exc)) from exc
        raise


@router.post("/predict")
async def predict(request: Request, service: ServiceDep, engine: EngineDep) -> Response:
    parsed = parse_predict(await request.body(), service.settings.max_batch_prompts)
    try:
        with service.admit(len(parsed.prompts)):
            work = asyncio.create_task(generate(engine, list(parsed.prompts), service.sampling))
            watcher = asyncio.create_task(client_gone(request.receive))
            try:
                done, _ = await asyncio.wait(
                    {work, watcher},
                    timeout=service.settings.request_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:  # also when this handler is cancelled itself (server shutdown)
                watcher.cancel()
                if not work.done():
                    work.cancel()  # the engine aborts the prompts that entered it
            if work not in done:
                await asyncio.gather(work, return_exceptions=True)  # the abort has run
                if watcher in done:
                    return Response(status_code=CLIENT_CLOSED)
                return JSONResponse(
                    {
                        "error": f"request took longer than REQUEST_TIMEOUT="
                        f"{service.settings.request_timeout:g} s; its generation was aborted"
                    },
                    status_code=504,
                )
            result = work.result()  # raises the engine's error for the handlers
    except Overloaded as exc:
        return JSONResponse(
            {"error": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    response = result.texts if parsed.is_list else result.texts[0]
    return JSONResponse({"response": response}, headers=timing_headers(result))
