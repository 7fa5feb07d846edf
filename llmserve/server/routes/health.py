"""`GET /`: health (200 once the engine serves; 503 while it loads or after it died) and
`GET /info`: the effective settings and the engine's facts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

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
            "settings": service.settings.public(),
            "engine": service.engine.facts() if service.engine else None,
        }
    )
