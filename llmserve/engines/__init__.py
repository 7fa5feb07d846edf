"""The engines the service can run, by the ENGINE setting's name, loaded lazily.

Each entry names, as "module:attr" strings, the engine's factory (an EngineFactory: settings
and checkpoint directory -> a ready Engine) and, optionally, its launch environment (settings,
environ -> variables the engine wants set before its process starts). Nothing is imported
until an engine is asked for, so picking one costs nothing and a new engine (llama.cpp, a
remote one) is one row here plus its package under llmserve/engines/.

This package's own import is cheap (no engine library, no settings); the Protocol and the
shared types are in llmserve.engines.base.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmserve.engines.base import EngineFactory
    from llmserve.settings import Settings

LaunchEnv = Callable[["Settings", Mapping[str, str]], dict[str, str]]


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine's pieces are: "module:attr" strings, imported on first use."""

    factory: str  # an EngineFactory
    launch_env: str | None = None  # a LaunchEnv; None: the engine needs no environment


ENGINES: dict[str, EngineEntry] = {
    "vllm": EngineEntry(
        factory="llmserve.engines.vllm.engine:VllmEngine",
        launch_env="llmserve.engines.vllm.cpu_env:launch_env",
    ),
    "llamacpp": EngineEntry(factory="llmserve.engines.llamacpp.engine:LlamaCppEngine"),
}


class UnknownEngine(ValueError):
    """ENGINE names no engine of ENGINES."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown ENGINE {name!r}; known: {', '.join(sorted(ENGINES))}")


def _entry(name: str) -> EngineEntry:
    try:
        return ENGINES[name]
    except KeyError:
        raise UnknownEngine(name) from None


def load_object(path: str) -> Any:
    """The object a "package.module:attr" string names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_engine_factory(name: str) -> EngineFactory:
    """The factory of the engine ENGINE=`name` picks (its module is imported now)."""
    factory: EngineFactory = load_object(_entry(name).factory)
    return factory


def launch_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables settings.engine wants before its process starts, none of them
    already in `environ` (the user's choice wins): for vLLM on CPU its measured defaults,
    {} elsewhere. Cheap: no engine library is imported."""
    entry = _entry(settings.engine)
    if entry.launch_env is None:
        return {}
    function: LaunchEnv = load_object(entry.launch_env)
    environ = os.environ if environ is None else environ
    return {k: v for k, v in function(settings, environ).items() if k not in environ}
