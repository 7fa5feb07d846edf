"""OpenAI requests mixed into the load (`llmserve load --mix N`): N each of a streamed chat, a
chat answer held to a JSON schema and a named tool call, sent with the /predict requests.

Each is checked: a stream must end with `data: [DONE]` and carry no error event; a schema
answer must parse and validate against its schema, and a tool call's arguments against the
tool's parameters (jsonschema), unless the answer was cut at max_tokens (counted as `cut`, not
as a failure: the constraint holds until the cut). After the load the engine must hold
nothing (/info's load), and a started server's memory is compared with before the load.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

KINDS = ("stream", "schema", "tool")
MAX_TOKENS = 256  # room for a schema answer or a tool call of the small schemas below
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}  # fmt: skip


@dataclass
class MixOutcome:
    """One mixed-in request: its kind, latency, and what went wrong (None: answered, valid)."""

    kind: str
    latency_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None  # not answered (status, transport, error event)
    invalid: str | None = None  # answered, but not what the constraint asked for


def body(kind: str, model: str, question: str) -> dict[str, Any]:
    """The request of one kind about `question`."""
    messages = [{"role": "user", "content": question}]
    base: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS}
    if kind == "stream":
        return {**base, "stream": True, "max_tokens": 32}
    if kind == "schema":
        return {**base, "response_format": {"type": "json_schema", "json_schema": {
            "name": "person", "schema": SCHEMA}}}  # fmt: skip
    return {**base, "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}


def check(kind: str, answer: dict[str, Any]) -> tuple[str | None, str | None]:
    """(finish_reason, why the answer breaks its constraint or None) of a non-streamed one."""
    import jsonschema

    choice = answer["choices"][0]
    finish = choice.get("finish_reason")
    message = choice["message"]
    if kind == "schema":
        text, schema = message.get("content") or "", SCHEMA
    else:
        calls = message.get("tool_calls") or []
        if not calls:
            return finish, "no tool_calls"
        text, schema = calls[0]["function"]["arguments"], TOOL["function"]["parameters"]
    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError) as error:
        return finish, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return finish, None


async def send(url: str, kind: str, model: str, question: str) -> MixOutcome:
    """One mixed-in request on a connection of its own."""
    import httpx

    from llmserve.bench.client import async_client

    outcome = MixOutcome(kind)
    start = time.perf_counter()
    try:
        async with async_client(url) as client:
            if kind == "stream":
                outcome.error, outcome.finish_reason = await _stream(client, body(kind, model,
                                                                                   question))
            else:
                response = await client.post("/v1/chat/completions",
                                             json=body(kind, model, question))
                if response.status_code != 200:
                    outcome.error = f"{response.status_code}: {response.text[:200]}"
                else:
                    outcome.finish_reason, outcome.invalid = check(kind, response.json())
    except httpx.HTTPError as error:
        outcome.error = f"{type(error).__name__}: {error}"
    outcome.latency_s = time.perf_counter() - start
    return outcome


async def _stream(client: Any, request: dict[str, Any]) -> tuple[str | None, str | None]:
    """(error, finish_reason) of a streamed chat: every event parsed, [DONE] last."""
    finish, done = None, False
    async with client.stream("POST", "/v1/chat/completions", json=request) as response:
        if response.status_code != 200:
            return f"{response.status_code}: {(await response.aread())[:200]!r}", None
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                done = True
                continue
            event = json.loads(data)
            if "error" in event:
                return f"error event: {event['error']}", finish
            for choice in event.get("choices", []):
                finish = choice.get("finish_reason") or finish
    return (None if done else "the stream ended without [DONE]"), finish


def summarize(outcomes: list[MixOutcome]) -> dict[str, Any]:
    """Per kind: requests, failures, invalid answers, answers cut at max_tokens, latency."""
    from llmserve.harness.stats import percentiles

    kinds = {}
    for kind in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        kinds[kind] = {
            "requests": len(mine),
            "failures": sum(o.error is not None for o in mine),
            "invalid": sum(o.invalid is not None and o.finish_reason != "length" for o in mine),
            "cut": sum(o.finish_reason == "length" for o in mine),
            "latency_s": percentiles([o.latency_s for o in mine
                                      if o.error is None and o.latency_s is not None]),
        }  # fmt: skip
    bad = [o for o in outcomes if o.error or (o.invalid and o.finish_reason != "length")]
    return {"kinds": kinds, "failures": len(bad),
            "examples": [{"kind": o.kind, "error": o.error, "invalid": o.invalid}
                         for o in bad[:20]]}  # fmt: skip
