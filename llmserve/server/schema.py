"""The /predict body: parsing and validation with messages that name the problem."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class BadRequest(ValueError):
    """A client error: its status code and a one-line message for the JSON body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PredictRequest:
    prompts: list[str]
    is_list: bool


def _kind(value: Any) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        dict: "object",
        list: "list",
        type(None): "null",
        str: "string",
    }.get(type(value), type(value).__name__)


def parse_predict(body: bytes, max_prompts: int) -> PredictRequest:
    """`{"prompt": str | [str, ...]}` -> the prompts, or BadRequest saying what is wrong."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadRequest(f'body must be a JSON object like {{"prompt": "..."}}, got {_kind(data)}')
    if "prompt" not in data:
        raise BadRequest('missing field "prompt"', status=422)
    prompt = data["prompt"]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise BadRequest("prompt is empty", status=422)
        return PredictRequest([prompt], is_list=False)
    if not isinstance(prompt, list):
        raise BadRequest(
            f"prompt must be a string or a list of strings, got {_kind(prompt)}", status=422
        )
    if not prompt:
        raise BadRequest("prompt is an empty list", status=422)
    if len(prompt) > max_prompts:
        raise BadRequest(
            f"prompt has {len(prompt)} items; at most {max_prompts} (MAX_BATCH_PROMPTS)",
            status=413,
        )
    for index, item in enumerate(prompt):
        if not isinstance(item, str):
            raise BadRequest(f"prompt[{index}] must be a string, got {_kind(item)}", status=422)
        if not item.strip():
            raise BadRequest(f"prompt[{index}] is empty", status=422)
    return PredictRequest(list(prompt), is_list=True)
