"""The service's state: the engine (once loaded), whether it is loading, ready or dead, and
the FastAPI dependencies that hand routes the service and a live engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from llmserve.engines.base import Engine, Sampling
from llmserve.settings import Settings

log = logging.getLogger("uvicorn.error")

# How often the watcher reads engine.dead (a flag read: nothing to save by reading it less).
WATCH_PERIOD_S = 0.5
# After the engine died, how long the server goes on answering (503s) before it stops: enough
# for in-flight requests to get their 503 and for a health poll to see `/` answer 503.
DEATH_LINGER_S = 3.0

class State(str, Enum):
    LOADING = "loading"
    READY = "ok"
    DEAD = "dead"


class EngineUnavailable(RuntimeError):
    """The engine is loading or dead: requests get a fast 503 with this message."""


class Overloaded(RuntimeError):
    """Admitting a request would exceed MAX_WAITING_PROMPTS: a fast 503 with Retry-After."""


@dataclass
class Service:
    settings: Settings
    model_dir: Path
    sampling: Sampling  # every request's defaults, from the settings
    state: State = State.LOADING
    engine: Engine | None = None
    error: str | None = None
    admitted: int = 0  # prompts admitted by /predict and not answered yet (all requests)
    # Called once, DEATH_LINGER_S after the engine died: `llmserve serve` stops uvicorn there
    # and exits 1 so that a supervisor restarts the service. None (tests, `uvicorn serve:app`):
    # the process stays up and answers 503.
    on_engine_death: Callable[[], None] | None = None

    @contextmanager
    def admit(self, prompts: int) -> Iterator[None]:
        """Count `prompts` as waiting while the block runs, or raise Overloaded when that would
        exceed MAX_WAITING_PROMPTS. Nothing awaits between the check and the count, so
        concurrent requests on the event loop cannot overshoot the limit."""
        limit = self.settings.front_waiting_prompts
        if self.admitted + prompts > limit:
            raise Overloaded(
                f"server is at capacity: {self.admitted} prompts waiting, {prompts} more would "
                f"exceed {self.settings.front_waiting_limit()}; retry later"
            )
        self.admitted += prompts
        try:
            yield
        finally:
            self.admitted -= prompts

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


async def watch_engine(service: Service) -> None:
    """Notice an engine death even when no request reveals it: the state turns DEAD (health
    503), and DEATH_LINGER_S later `service.on_engine_death` runs. Runs for the app's life."""
    while service.state is not State.DEAD:
        await asyncio.sleep(WATCH_PERIOD_S)
        service.live_engine()
    log.error("the engine died: %s", service.error)
    if service.on_engine_death is not None:
        await asyncio.sleep(DEATH_LINGER_S)
        service.on_engine_death()


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_engine(service: Annotated[Service, Depends(get_service)]) -> Engine:
    return service.require_engine()


ServiceDep = Annotated[Service, Depends(get_service)]
EngineDep = Annotated[Engine, Depends(get_engine)]
