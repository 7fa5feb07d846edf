"""`POST /predict` {"prompt": str | [str, ...]} -> {"response": str | [str, ...]}, with the
engine-side timing headers a judge uses to leave HTTP time out.

Load and faults: a request is admitted only while the prompts waiting over all requests stay
within MAX_WAITING_PROMPTS (else a fast 503 with Retry-After); its generation runs as a task
that is cancelled when the client disconnects or REQUEST_TIMEOUT passes (504). Cancelling an
engine's generate aborts what entered the engine (the Engine Protocol's contract).

Answer shaping (llmserve.shaping, all off by default): LENGTH_ROUTER's per-prompt max_tokens,
BUDGET_HINT and the post-processing settings apply here; X-Output-Tokens stays the engine's
generated count.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from llmserve.engines.base import Generation
from llmserve.engines.guard import ClientGone, TimedOut, generate, guarded
from llmserve.server.routes.guard import CLIENT_CLOSED, RETRY_AFTER_S
from llmserve.server.schema import parse_predict
from llmserve.server.state import EngineDep, Overloaded, ServiceDep
from llmserve.shaping.apply import shaped_generate

router = APIRouter()


def timing_headers(result: Generation) -> dict[str, str]:
    headers = {
        "X-Engine-Seconds": f"{result.engine_seconds:.6f}",
        "X-Output-Tokens": str(result.output_tokens),
    }
    if result.ttft_seconds is not None:
        headers["X-Engine-TTFT"] = f"{result.ttft_seconds:.6f}"
    return headers


@router.post("/predict")
async def predict(request: Request, service: ServiceDep, engine: EngineDep) -> Response:
    parsed = parse_predict(await request.body(), service.settings.max_batch_prompts)
    try:
        with service.admit(len(parsed.prompts)):
            work = shaped_generate(
                partial(generate, engine), list(parsed.prompts), service.sampling, service.settings
            )
            result = await guarded(request, work, service.settings.request_timeout)
    except Overloaded as exc:
        return JSONResponse(
            {"error": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    except TimedOut as exc:
        return JSONResponse({"error": str(exc)}, status_code=504)
    response = result.texts if parsed.is_list else result.texts[0]
    return JSONResponse({"response": response}, headers=timing_headers(result))
