"""What an API_SERVERS front attaches to: engines another process (the supervisor) started.

One attachment per replica, either
- a URL: an engine worker process (llmserve.engines.process.worker), reached over HTTP; what
  the llama.cpp engine's fronts share;
- a vLLM engine core's client fields (engines/vllm/cores.py CoreClient): the front runs its
  own vLLM client (AsyncLLM) of that core, as `vllm serve --api-server-count` does.
They travel to each front as one JSON list on its command line (`encode`, `decode`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from llmserve.engines.base import Engine
    from llmserve.settings import Settings

Attachment = str | Mapping[str, Any]


class SharedEngines(Protocol):
    """The engines an API_SERVERS supervisor starts and its fronts attach to."""

    def attachments(self, front: int) -> Sequence[Attachment]:
        """What front number `front` attaches to: one per replica."""
        ...

    def start(self) -> None:
        """Start every replica, one after another (an exception: one failed to start)."""
        ...

    def dead(self) -> str | None:
        """A line naming an engine process that ended, or None while all run."""
        ...

    def stop(self) -> None: ...


def shared_engines(settings: Settings, model_dir: Path, fronts: int) -> SharedEngines:
    """vLLM: engine cores each front runs a client of (engines/vllm/cores.py); any other
    engine: worker processes the fronts reach over HTTP."""
    if settings.engine == "vllm":
        from llmserve.engines.vllm.cores import SharedCores

        return SharedCores(settings, model_dir, fronts)
    from llmserve.engines.process.client import WorkerProcesses

    return WorkerProcesses(model_dir, settings.engine_replicas)


def encode(attachments: Sequence[Attachment]) -> str:
    return json.dumps([a if isinstance(a, str) else dict(a) for a in attachments])


def decode(text: str) -> list[Attachment]:
    """The attachments `encode` wrote (a ValueError naming the text if it is not that)."""
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(a, (str, dict)) for a in value):
        raise ValueError(f"not a JSON list of URLs and objects: {text!r}")
    return value


def attached_engine(settings: Settings, model_dir: Path, attachment: Attachment) -> Engine:
    """The engine of one attachment, ready (its owner ends this process if it never is)."""
    if isinstance(attachment, str):
        from llmserve.engines.process.client import ProcessEngine

        return ProcessEngine.attach(attachment)
    from llmserve.engines.vllm.cores import CoreClient
    from llmserve.engines.vllm.engine import VllmEngine

    return VllmEngine(settings, model_dir, core=CoreClient(**attachment))
