"""`GET /`: health (200 once the engine serves; 503 while it loads or after it died) and
`GET /info`: the effective settings, the engine's facts and the current load."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from llmserve.server.openai.models import served_name
from llmserve.server.state import ServiceDep

router = APIRouter()


@router.get("/")
async def health(service: ServiceDep) -> JSONResponse:
    engine = service.live_engine()
    body: dict[str, Any] = {"status": service.state.value, "model": service.model_dir.name}
    if service.error:
        body["error"] = service.error
    return JSONResponse(body, status_code=200 if engine else 503)


@router.get("/info")
async def info(service: ServiceDep) -> JSONResponse:
    return JSONResponse(
        {
            "status": service.state.value,
            "model": served_name(service),  # what /v1/models lists and requests name
            "settings": service.settings.public(),
            "pid": os.getpid(),  # the process that answered: one of API_SERVERS fronts
            "engine": service.engine.facts() if service.engine else None,
            # Load: prompts admitted by /predict and not answered (MAX_WAITING_PROMPTS bounds
            # it), and requests the engine itself holds (none left once work is aborted).
            "load": {
                "waiting_prompts": service.admitted,
                "max_waiting_prompts": service.settings.front_waiting_prompts,
                "engine_unfinished": service.engine.unfinished
                if service.engine and not service.engine.dead
                else 0,
            },
        }
    )
