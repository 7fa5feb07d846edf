"""The /v1 operations' OpenAPI description: request bodies from the pydantic models (inlined:
a route's `openapi_extra` cannot carry `$defs`), the 200 answers, and each unsupported value
marked as such, so that a body the schema allows is one the server answers (the fuzzer's
positive cases, tests/test_fuzz.py)."""

from __future__ import annotations

from typing import Any

from llmserve.server.openai import structured, tools
from llmserve.server.openai.refused import served_schemas
from llmserve.server.openai.requests import ChatRequest, CompletionRequest, Strict

JSON = dict[str, Any]


# One server-sent event as schemathesis (and OpenAPI 3.2's itemSchema) reads a stream: its
# `data` is a chunk's JSON, or `[DONE]` at the end.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
    "required": ["data"],
}

def inline(schema: Any, defs: JSON) -> Any:
    """`schema` with every `{"$ref": "#/$defs/X"}` replaced by X (the models do not recurse)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: inline(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [inline(item, defs) for item in schema]
    return schema


# Values valid in OpenAI's API that this server refuses with a 400 naming the field.
SERVED_ONLY: dict[str, JSON] = {
    "n": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1}, {"type": "null"}]},
    "best_of": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1}, {"type": "null"}]},
    "echo": {"anyOf": [{"type": "boolean", "enum": [False]}, {"type": "null"}]},
}
LOGPROBS: dict[type[Strict], JSON] = {
    ChatRequest: {"anyOf": [{"type": "boolean", "enum": [False]}, {"type": "null"}]},
    CompletionRequest: {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 0},
                                  {"type": "null"}]},
}


def request_schema(model: type[Strict], model_names: list[str], max_prompts: int) -> JSON:
    raw = model.model_json_schema()
    schema: JSON = inline(raw, raw.get("$defs", {}))
    properties = schema["properties"]
    for name, served in SERVED_ONLY.items():
        if name in properties:
            properties[name] = {**properties[name], **served}
    properties["logprobs"] = {**properties["logprobs"], **LOGPROBS[model]}
    for name, served in served_schemas(model.refused_fields()).items():
        properties[name] = {**properties[name], **served}
    conditions = structured.describe(properties)
    if model is ChatRequest:
        conditions.append(tools.describe())
    schema["allOf"] = conditions
    for option in properties.get("prompt", {}).get("anyOf", []):
        if option.get("type") == "array":  # a list prompt: at most MAX_BATCH_PROMPTS
            option["maxItems"] = max_prompts
            # and streamed only alone (the route's 400 for stream=true with a list)
            schema["if"] = {"properties": {"stream": {"const": True}}, "required": ["stream"]}
            schema["then"] = {"properties": {"prompt": {"type": "string"}}}
    properties["model"] = {**properties["model"],
                           "anyOf": [{"type": "string", "enum": model_names}, {"type": "null"}]}
    return schema


ANSWER: JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion", "text_completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "object"}, "minItems": 1},
        "usage": {
            "type": "object",
            "properties": {
                name: {"type": "integer", "minimum": 0}
                for name in ("prompt_tokens", "completion_tokens", "total_tokens")
            },
            "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        },
    },
    "required": ["id", "object", "created", "model", "choices", "usage"],
}


def generating_openapi(
    model: type[Strict], model_names: list[str], summary: str, max_prompts: int
) -> JSON:
    """`openapi_extra` of POST /v1/chat/completions or /v1/completions (the routes read the
    raw body: its errors are answered by parse_body, in OpenAI's shape)."""
    return {
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": request_schema(model, model_names, max_prompts)}
            },
        },
        "responses": {
            "200": {
                "description": "The answer; with stream=true, server-sent events: one chunk "
                "per `data:` line, then `data: [DONE]`.",
                "content": {
                    "application/json": {"schema": ANSWER},
                    "text/event-stream": {"schema": SSE_EVENT},
                },
            }
        },
    }


MODELS: JSON = {
    "responses": {
        "200": {
            "description": "The served model.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "object": {"type": "string", "enum": ["list"]},
                            "data": {"type": "array", "items": {"type": "object"}},
                        },
                        "required": ["object", "data"],
                    }
                }
            },
        }
    }
}
