"""The service's state: the engine (once loaded), whether it is loading, ready or dead, and
the FastAPI dependencies that hand routes the service and a live engine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from llmserve.engines.base import Engine, Sampling
from llmserve.settings import Settings


class State(str, Enum):
    LOADING = "loading"
    READY = "ok"
    DEAD = "dead"


class EngineUnavailable(RuntimeError):
    """The engine is loading or dead: requests get a fast 503 with this message."""


@dataclass
class Service:
    settings: Settings
    model_dir: Path
    sampling: Sampling  # every request's defaults, from the settings
    state: State = State.LOADING
    engine: Engine | None = None
    error: str | None = None

    def live_engine(self) -> Engine | None:
        """The engine if it serves; notices a death (the state turns DEAD)."""
        if self.engine is not None and self.engine.dead:
            self.state, self.error = State.DEAD, "the engine process died"
        return self.engine if self.state is State.READY else None

    def require_engine(self) -> Engine:
        """The live engine, or EngineUnavailable saying why not."""
        engine = self.live_engine()
        if engine is None:
            raise EngineUnavailable(
                f"engine is {self.state.value}" + (f": {self.error}" if self.error else "")
            )
        return engine


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_engine(service: Annotated[Service, Depends(get_service)]) -> Engine:
    return service.require_engine()


ServiceDep = Annotated[Service, Depends(get_service)]
EngineDep = Annotated[Engine, Depends(get_engine)]
