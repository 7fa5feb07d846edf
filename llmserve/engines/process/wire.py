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
    PromptRejected,
    PromptTooLong,
    RawText,
    Sampling,
    StructuredRefused,
    TokenIds,
    TokenLogprob,
    TokenLogprobs,
)


def encode_prompt(prompt: Prompt) -> Any:
    """A string and a conversation are JSON already; RawText is {"raw": text}, TokenIds
    {"ids": [...]}."""
    if isinstance(prompt, RawText):
        return {"raw": prompt.text}
    if isinstance(prompt, TokenIds):
        return {"ids": list(prompt.ids)}
    return prompt


def decode_prompt(value: Any) -> Prompt:
    if isinstance(value, dict):
        if "ids" in value:
            return TokenIds(tuple(int(i) for i in value["ids"]))
        return RawText(str(value["raw"]))
    return value  # type: ignore[no-any-return]


def encode_sampling(sampling: Sampling | None) -> dict[str, Any] | None:
    return None if sampling is None else dataclasses.asdict(sampling)


def decode_sampling(value: dict[str, Any] | None) -> Sampling | None:
    return None if value is None else Sampling(**value)


def encode_generation(generation: Generation) -> dict[str, Any]:
    return dataclasses.asdict(generation)


def _decode_tokens(rows: list[list[dict[str, Any]] | None] | None) -> Any:
    """Per-prompt token lists (asdict made each TokenLogprob a dict) back as TokenLogprobs."""
    if rows is None:
        return None
    tokens: list[TokenLogprobs | None] = [
        None if row is None else [TokenLogprob(**token) for token in row] for row in rows
    ]
    return tokens


def decode_generation(value: dict[str, Any]) -> Generation:
    fields = {**value, "logprobs": _decode_tokens(value.get("logprobs")),
              "prompt_logprobs": _decode_tokens(value.get("prompt_logprobs"))}  # fmt: skip
    return Generation(**fields)


def encode_delta(delta: Delta) -> dict[str, Any]:
    return dataclasses.asdict(delta)


def decode_delta(value: dict[str, Any]) -> Delta:
    (logprobs,) = _decode_tokens([value.get("logprobs")])
    return Delta(**{**value, "logprobs": logprobs})


def encode_error(error: EngineError) -> dict[str, Any]:
    if isinstance(error, PromptTooLong):
        return {"error": "prompt_too_long", "index": error.index, "tokens": error.tokens,
                "limit": error.limit}  # fmt: skip
    if isinstance(error, PromptRejected):
        return {"error": "prompt_rejected", "message": str(error), "param": error.param}
    if isinstance(error, StructuredRefused):
        return {"error": "structured_refused", "param": error.param,
                "message": str(error).removeprefix(f"{error.param}: ")}  # fmt: skip
    kind = "engine_dead" if isinstance(error, EngineDead) else "engine_error"
    return {"error": kind, "message": str(error)}


def decode_error(value: dict[str, Any]) -> EngineError:
    kind = value.get("error")
    if kind == "prompt_too_long":
        return PromptTooLong(value["index"], value["tokens"], value["limit"])
    if kind == "prompt_rejected":
        return PromptRejected(str(value.get("message")), str(value.get("param")))
    if kind == "structured_refused":
        return StructuredRefused(str(value["param"]), str(value["message"]))
    if kind == "engine_dead":
        return EngineDead(str(value.get("message")))
    return EngineError(str(value.get("message", value)))
