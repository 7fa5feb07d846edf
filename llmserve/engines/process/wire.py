"""The engine seam's values as JSON, for an engine in another process (llmserve.engines.process).

Prompts, sampling, generations and deltas are the dataclasses and types of
llmserve.engines.base; errors travel as {"error": kind, ...} bodies and come back as the same
exceptions, so the dispatcher and the HTTP layer cannot tell a process replica from a local one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmserve.engines.base import (
    Delta,
    EngineDead,
    EngineError,
    Generation,
    Prompt,
    PromptTooLong,
    RawText,
    Sampling,
)
from llmserve.engines.structured import StructuredRefused


def encode_prompt(prompt: Prompt) -> Any:
    """A string and a conversation are JSON already; RawText is {"raw": text}."""
    return {"raw": prompt.text} if isinstance(prompt, RawText) else prompt


def decode_prompt(value: Any) -> Prompt:
    if isinstance(value, dict):
        return RawText(str(value["raw"]))
    return value  # type: ignore[no-any-return]


def encode_sampling(sampling: Sampling | None) -> dict[str, Any] | None:
    return None if sampling is None else dataclasses.asdict(sampling)


def decode_sampling(value: dict[str, Any] | None) -> Sampling | None:
    return None if value is None else Sampling(**value)


def encode_generation(generation: Generation) -> dict[str, Any]:
    return dataclasses.asdict(generation)


def decode_generation(value: dict[str, Any]) -> Generation:
    return Generation(**value)


def encode_delta(delta: Delta) -> dict[str, Any]:
    return dataclasses.asdict(delta)


def decode_delta(value: dict[str, Any]) -> Delta:
    return Delta(**value)


def encode_error(error: EngineError) -> dict[str, Any]:
    if isinstance(error, PromptTooLong):
        return {"error": "prompt_too_long", "index": error.index, "tokens": error.tokens,
                "limit": error.limit}  # fmt: skip
    if isinstance(error, StructuredRefused):
        return {"error": "structured_refused", "param": error.param,
                "message": str(error).removeprefix(f"{error.param}: ")}  # fmt: skip
    kind = "engine_dead" if isinstance(error, EngineDead) else "engine_error"
    return {"error": kind, "message": str(error)}


def decode_error(value: dict[str, Any]) -> EngineError:
    kind = value.get("error")
    if kind == "prompt_too_long":
        return PromptTooLong(value["index"], value["tokens"], value["limit"])
    if kind == "structured_refused":
        return StructuredRefused(str(value["param"]), str(value["message"]))
    if kind == "engine_dead":
        return EngineDead(str(value.get("message")))
    return EngineError(str(value.get("message", value)))
