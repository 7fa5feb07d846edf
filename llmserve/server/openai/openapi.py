"""The /v1 operations' OpenAPI description: request bodies from the pydantic models (inlined:
a route's `openapi_extra` cannot carry `$defs`), the 200 answers, and each unsupported value
marked as such, so that a body the schema allows is one the server answers (the fuzzer's
positive cases, tests/http/test_fuzz.py)."""

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
    "best_of": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1}, {"type": "null"}]},
}
NULL: JSON = {"type": "null"}
STREAMED: JSON = {"required": ["stream"], "properties": {"stream": {"const": True}}}


def given(name: str, schema: JSON) -> JSON:
    """The JSON Schema condition "`name` is present and matches `schema`"."""
    return {"required": [name], "properties": {name: schema}}


def not_given(name: str) -> JSON:
    return {"properties": {name: NULL}}


# The rules between fields that `unsupported()` checks (ChatRequest, CompletionRequest).
RULES: dict[type[Strict], list[JSON]] = {
    ChatRequest: [
        # top_logprobs needs logprobs=true
        {"if": given("top_logprobs", {"type": "integer"}),
         "then": given("logprobs", {"const": True})},
    ],
    CompletionRequest: [
        # max_tokens=0 scores the prompt only: with echo; echo is not streamed
        {"if": given("max_tokens", {"const": 0}), "then": given("echo", {"const": True})},
        {"if": STREAMED, "then": {"properties": {"echo": {"enum": [False, None]}}}},
    ],
}  # fmt: skip


def request_schema(model: type[Strict], model_names: list[str], max_prompts: int) -> JSON:
    raw = model.model_json_schema()
    schema: JSON = inline(raw, raw.get("$defs", {}))
    properties = schema["properties"]
    for name, served in SERVED_ONLY.items():
        if name in properties:
            properties[name] = {**properties[name], **served}
    for name, served in served_schemas(model.refused_fields()).items():
        properties[name] = {**properties[name], **served}
    conditions = [*RULES[model], *structured.describe(properties)]
    if model is ChatRequest:
        conditions.extend(tools.describe())
    schema["allOf"] = conditions
    for option in properties.get("prompt", {}).get("anyOf", []):
        if option.get("type") == "array":  # a list prompt: at most MAX_BATCH_PROMPTS
            if option.get("items", {}).get("type") != "integer":  # token ids are one prompt
                option["maxItems"] = max_prompts
            # and streamed only alone (the route's 400 for stream=true with a list)
            schema["if"] = {"properties": {"stream": {"const": True}}, "required": ["stream"]}
            schema["then"] = {"properties": {"prompt": {"type": "string"}}}
    return _with_models(schema, model_names)


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


def _with_models(schema: JSON, model_names: list[str]) -> JSON:
    properties = schema["properties"]
    properties["model"] = {**properties["model"],
                           "anyOf": [{"type": "string", "enum": model_names}, NULL]}
    return schema


def _body(schema: JSON, answer: JSON, summary: str) -> JSON:
    return {
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": {"200": {"description": "The answer.",
                              "content": {"application/json": {"schema": answer}}}},
    }  # fmt: skip


def tokenize_openapi(model: type[Strict], model_names: list[str]) -> JSON:
    """`openapi_extra` of POST /tokenize: a prompt, or messages (through the chat template,
    with the generation prompt), exactly one of them."""
    raw = model.model_json_schema()
    schema = _with_models(inline(raw, raw.get("$defs", {})), model_names)
    schema["anyOf"] = [
        {"required": ["prompt"], "properties": {"prompt": {"type": "string"},
                                                "messages": NULL}},
        {"required": ["messages"], "properties": {"messages": {"type": "array"}, "prompt": NULL,
                                                  "add_generation_prompt": {"const": True}}},
    ]  # fmt: skip
    ids = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    answer = {"type": "object", "required": ["count", "max_model_len", "tokens", "token_strs"],
              "properties": {"count": {"type": "integer", "minimum": 0},
                             "max_model_len": {"type": "integer"}, "tokens": ids,
                             "token_strs": {"anyOf": [{"type": "array"}, NULL]}}}  # fmt: skip
    return _body(schema, answer, "Token ids of a text or a conversation (vLLM's shape)")


def detokenize_openapi(model: type[Strict], model_names: list[str]) -> JSON:
    """`openapi_extra` of POST /detokenize. An id outside the engine's vocabulary is a 400;
    the vocabulary is the engine's, so the schema cannot bound the ids."""
    raw = model.model_json_schema()
    schema = _with_models(inline(raw, raw.get("$defs", {})), model_names)
    answer = {"type": "object", "required": ["prompt"],
              "properties": {"prompt": {"type": "string"}}}  # fmt: skip
    return _body(schema, answer, "The text of token ids (vLLM's shape)")
