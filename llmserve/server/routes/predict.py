"""`POST /predict` {"prompt": str | [str, ...]} -> {"response": str | [str, ...]}, with the
engine-side timing headers a judge uses to leave HTTP time out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from llmserve.engines.base import EngineDead, EngineError, Generation
from llmserve.server.schema import parse_predict
from llmserve.server.state import EngineDep, ServiceDep

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
async def predict(request: Request, service: ServiceDep, engine: EngineDep) -> JSONResponse:
    parsed = parse_predict(await request.body(), service.settings.max_batch_prompts)
    try:
        result = await engine.generate(parsed.prompts, service.sampling)
    except EngineError:
        raise  # PromptTooLong, EngineDead: the app's handlers answer
    except Exception as exc:
        if engine.dead:  # an engine that does not say so itself
            raise EngineDead(str(exc)) from exc
        raise
    response = result.texts if parsed.is_list else result.texts[0]
    return JSONResponse({"response": response}, headers=timing_headers(result))
