"""The /predict body: parsing and validation with messages that name the problem."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

# What json.loads accepts but no tokenizer or JSON encoder downstream does. Each one was a
# 500 with a traceback from /predict before it was checked here (issue #11):
# - a lone surrogate ("\ud800" escaped in the JSON): the Rust tokenizer raises TypeError and a
#   str holding one cannot be encoded to UTF-8 (a JSON answer echoing it fails the same way);
# - nesting deeper than the C parser's recursion limit (about 1000 levels): RecursionError.
#   Refused before parsing (MAX_DEPTH): a RecursionError raised inside CPython 3.11's C code
#   leaves the interpreter's recursion counter off, and the next ast.parse in the process
#   failed with "SystemError: AST constructor recursion depth mismatch" (seen in CI);
# - an integer of more than sys.get_int_max_str_digits() digits (4300): ValueError.
# Control characters (NUL, ESC, DEL...) are not refused: the model's tokenizer encodes them
# (checked on SmolLM2's), so they are text like any other.
# Every character str.isspace() counts, as a regex class body (ECMA and Python read it alike).
PY_WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins a valid pair into one character
MAX_DEPTH = 512  # nesting levels a body may have (a /predict body needs 2); the C parser
# raises RecursionError near 1000 minus the stack already in use
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
BRACKET = re.compile(r"[\[\]{}]")


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


class _Refused(ValueError):
    """A JSON value json.loads would accept, refused while parsing (its message says why)."""


def _parse_int(text: str) -> int:
    limit = sys.get_int_max_str_digits()
    digits = len(text.lstrip("-"))
    if limit and digits > limit:
        raise _Refused(f"a number has {digits} digits; at most {limit}")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value")


def _depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (brackets inside strings do not count).
    Scans only a text with more brackets than MAX_DEPTH: any other is shallow enough."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for bracket in BRACKET.findall(JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_json(body: bytes) -> Any:
    """The body's JSON value, or BadRequest (400) naming what is not JSON about it: malformed
    text, bytes that are not UTF-8 (or UTF-16/32, which json.loads detects), nesting too deep,
    a number too long to convert, NaN or Infinity."""
    try:
        text = body.decode(json.detect_encoding(body))
        depth = _depth(text)
        if depth > MAX_DEPTH:
            raise _Refused(f"nested {depth} levels deep; at most {MAX_DEPTH}")
        return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except _Refused as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest(
            "body is not valid JSON: nested too deeply (about 1000 levels at most)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    except ValueError as error:  # e.g. a float literal Python cannot convert
        raise BadRequest(f"body is not valid JSON: {error}") from None


def _check_text(field: str, text: str) -> None:
    """Refuse text no tokenizer accepts, naming the field and the position."""
    match = SURROGATE.search(text)
    if match:
        raise BadRequest(
            f"{field} has an unpaired surrogate at position {match.start()}", status=422
        )


def parse_predict(body: bytes, max_prompts: int) -> PredictRequest:
    """`{"prompt": str | [str, ...]}` -> the prompts, or BadRequest saying what is wrong."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise BadRequest(f'body must be a JSON object like {{"prompt": "..."}}, got {_kind(data)}')
    if "prompt" not in data:
        raise BadRequest('missing field "prompt"', status=422)
    prompt = data["prompt"]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise BadRequest("prompt is empty", status=422)
        _check_text("prompt", prompt)
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
        _check_text(f"prompt[{index}]", item)
    return PredictRequest(list(prompt), is_list=True)


def predict_openapi(max_prompts: int) -> dict[str, Any]:
    """The /predict request body as OpenAPI (a route's `openapi_extra`): documentation and
    the fuzzer's model only. The route reads the raw body and parse_predict checks it, so
    its messages, not FastAPI's, answer a bad body."""
    # Not only whitespace, in Python's sense (str.strip, what parse_predict checks): JSON
    # Schema's \S is ECMA's, which counts \x1c-\x1f and \x85 as text (the fuzzer sent "\x1f").
    text = {"type": "string", "minLength": 1, "pattern": f"[^{PY_WHITESPACE}]"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "prompt": {
                                "description": "One prompt, or a list answered in order.",
                                "oneOf": [
                                    text,
                                    {
                                        "type": "array",
                                        "items": text,
                                        "minItems": 1,
                                        "maxItems": max_prompts,
                                    },
                                ],
                            }
                        },
                        "required": ["prompt"],
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "The answers: a string for a string prompt, a list in the "
                "prompts' order for a list.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "response": {
                                    "oneOf": [
                                        {"type": "string"},
                                        {"type": "array", "items": {"type": "string"}},
                                    ]
                                }
                            },
                            "required": ["response"],
                        }
                    }
                },
            }
        },
    }


def health_openapi() -> dict[str, Any]:
    """`GET /`'s answers as OpenAPI: the same body for 200 and 503 (what a poller reads),
    with `error` saying why the engine is dead."""
    body = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "loading", "dead"]},
            "model": {"type": "string"},
            "error": {"type": "string"},
        },
        "required": ["status", "model"],
    }
    content = {"application/json": {"schema": body}}
    return {
        "responses": {
            "200": {"description": "The engine serves.", "content": content},
            "503": {"description": "The engine is loading, or dead.", "content": content},
        }
    }
