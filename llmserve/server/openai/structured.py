"""The request fields that constrain an answer's form: OpenAI's `response_format` and vLLM's
`structured_outputs` (one of json, regex, choice, grammar, json_object). The removed
`guided_*` fields of older vLLM are refused by name (vLLM itself answers them with a 200 and
unconstrained text)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmserve.engines.structured import StructuredSpec
from llmserve.server.openai.errors import OpenAIError


class Strict(BaseModel):  # as requests.Strict (which imports this module)
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


GUIDED = ("guided_json", "guided_regex", "guided_choice", "guided_grammar")
# structured_outputs' constraints; one given (a value but null or false) at most.
NAMES = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")


class JsonSchema(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None  # always enforced: the engine's grammar is strict


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None


class StructuredOutputs(Strict):
    """vLLM's `structured_outputs`: exactly one of these."""

    json_: dict[str, Any] | str | None = Field(None, alias="json")
    regex: str | None = Field(None, min_length=1)
    choice: list[str] | None = Field(None, min_length=1)
    grammar: str | None = Field(None, min_length=1)
    json_object: bool | None = None
    structural_tag: str | None = None


class StructuredFields(Strict):
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = Field(
        None, description="vLLM's extension: one of json, regex, choice, grammar, json_object."
    )
    guided_json: Any = Field(None, description="Removed in vLLM 0.12: a 400.")
    guided_regex: Any = Field(None, description="Removed in vLLM 0.12: a 400.")
    guided_choice: Any = Field(None, description="Removed in vLLM 0.12: a 400.")
    guided_grammar: Any = Field(None, description="Removed in vLLM 0.12: a 400.")

    def structured_spec(self) -> StructuredSpec | None:
        """The constraint this request asks for (OpenAIError 400 for what is not served)."""
        for name in GUIDED:
            if getattr(self, name) is not None:
                raise OpenAIError(
                    400, f"{name} is not supported: use structured_outputs (vLLM >= 0.12)", name
                )
        spec = _response_format(self.response_format)
        vllm_spec = _structured_outputs(self.structured_outputs)
        if spec is not None and vllm_spec is not None:
            raise OpenAIError(
                400, "response_format and structured_outputs are exclusive", "structured_outputs"
            )
        return spec or vllm_spec


def _response_format(value: ResponseFormat | None) -> StructuredSpec | None:
    if value is None or value.type == "text":
        return None
    if value.type == "json_object":
        return StructuredSpec("json_object", param="response_format")
    if value.json_schema is None:
        raise OpenAIError(
            400, "response_format.json_schema is required for type json_schema",
            "response_format",
        )  # fmt: skip
    return StructuredSpec(
        "json", json.dumps(value.json_schema.schema_), "response_format.json_schema.schema"
    )


def _structured_outputs(value: StructuredOutputs | None) -> StructuredSpec | None:
    if value is None:
        return None
    given = [n for n in NAMES if getattr(value, "json_" if n == "json" else n) not in (None, False)]
    if not given:  # {} or only nulls: no constraint asked for
        return None
    if len(given) > 1:
        raise OpenAIError(
            400, f"structured_outputs takes one constraint, got {given}", "structured_outputs"
        )
    (name,) = given
    param = f"structured_outputs.{name}"
    if name == "structural_tag":
        raise OpenAIError(400, "structured_outputs.structural_tag is not supported", param)
    if name == "json":
        raw = value.json_
        text = raw if isinstance(raw, str) else json.dumps(raw)
        try:
            if not isinstance(json.loads(text), dict):
                raise ValueError("not an object")
        except ValueError:
            raise OpenAIError(400, f"{param}: not a JSON schema object (got {text[:40]!r})",
                              "structured_outputs") from None  # fmt: skip
        return StructuredSpec("json", text, param)
    if name == "json_object":
        return StructuredSpec("json_object", param=param)
    if name == "choice":
        return StructuredSpec("choice", json.dumps(value.choice), param)
    return StructuredSpec(name, str(getattr(value, name)), param)  # type: ignore[arg-type]


NULL: dict[str, Any] = {"type": "null"}


def describe(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Narrows the request schema's structured-output fields to what is served (one
    constraint at most, json_schema with its schema, no guided_*, no structural_tag) and
    returns the conditions between fields, for the OpenAPI description (tests/http/test_fuzz.py:
    a body the schema allows is served)."""
    for name in GUIDED:
        properties[name] = {**properties[name], "anyOf": [NULL]}
    outputs = properties["structured_outputs"]
    option = next(o for o in outputs["anyOf"] if o.get("type") == "object")
    pairs = [(a, b) for i, a in enumerate(NAMES) for b in NAMES[i + 1:]]
    option["not"] = {"anyOf": [{"allOf": [_given(a), _given(b)]} for a, b in pairs]}
    option["properties"]["structural_tag"] = NULL
    # json as a string holding a schema object (vLLM's) is served too; a schema cannot say
    # "a string holding a JSON object", so only the object form is described.
    option["properties"]["json"] = {"anyOf": [{"type": "object"}, NULL]}
    formats = properties["response_format"]
    option = next(o for o in formats["anyOf"] if o.get("type") == "object")
    option["if"] = {"properties": {"type": {"const": "json_schema"}}, "required": ["type"]}
    option["then"] = {"required": ["json_schema"], "properties": {"json_schema": {"type":
                                                                                  "object"}}}
    return [{  # both constraints at once is a 400
        "if": {"required": ["structured_outputs"],
               "properties": {"structured_outputs": {
                   "type": "object", "anyOf": [_given(name) for name in NAMES]}}},
        "then": {"properties": {"response_format": {"anyOf": [
            NULL, {"type": "object", "properties": {"type": {"const": "text"}}}]}}},
    }]  # fmt: skip


def unconstrained() -> dict[str, Any]:
    """The JSON Schema of "neither response_format nor structured_outputs asks for a
    constraint" (what a tool call needs: it brings its own)."""
    return {"properties": {
        "response_format": {"anyOf": [
            NULL, {"type": "object", "properties": {"type": {"const": "text"}}}]},
        "structured_outputs": {"not": {
            "type": "object", "anyOf": [_given(name) for name in NAMES]}},
    }}  # fmt: skip


def _given(name: str) -> dict[str, Any]:
    """The JSON Schema of "structured_outputs gives `name`" (a value but null or false)."""
    return {"required": [name], "properties": {name: {"not": {"enum": [None, False]}}}}
