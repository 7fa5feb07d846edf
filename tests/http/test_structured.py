"""Structured outputs and tool calls against the real engines (the session servers of
tests/conftest.py: vLLM and llama.cpp, the real model, real HTTP) with the openai SDK."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import Server
from tests.http import test_openai_sdk

pytestmark = pytest.mark.engine
model, sdk = test_openai_sdk.model, test_openai_sdk.sdk  # its fixtures, reused

ASK = [{"role": "user", "content": "Describe the city of Paris as JSON."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 20}},
            "required": ["zone"],
        },
    },
}


class City(BaseModel):
    name: str
    country: str
    rank: Literal["small", "big"]


def test_parse_with_a_pydantic_model(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.parse(
        model=model, messages=ASK, response_format=City, max_tokens=96  # type: ignore[arg-type]
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City)  # parsed and validated by the SDK: a constrained answer


def test_json_schema_nested_and_array_validate(sdk: openai.OpenAI, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 12},
                     "minItems": 1, "maxItems": 3},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}},
                      "required": ["lat"]},
        },
        "required": ["tags", "where"],
    }  # fmt: skip
    answer = sdk.chat.completions.create(
        model=model, messages=ASK, max_tokens=96,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "t", "schema": schema, "strict": True}},
    )  # fmt: skip
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), schema)


def test_json_object(sdk: openai.OpenAI, model: str) -> None:
    answer = sdk.chat.completions.create(
        model=model, messages=ASK, max_tokens=64, response_format={"type": "json_object"}
    )
    choice = answer.choices[0]
    if choice.finish_reason == "stop":  # cut at max_tokens, a JSON object is unfinished
        assert isinstance(json.loads(choice.message.content or ""), dict)
    else:
        assert (choice.message.content or "").lstrip().startswith("{")


def test_choice_extension(any_server: Server) -> None:
    with any_server.client() as http:
        body = http.post("/v1/chat/completions", json={
            "messages": ASK, "structured_outputs": {"choice": ["yes", "no"]}}).json()  # fmt: skip
    assert body["choices"][0]["message"]["content"] in ("yes", "no")


def test_named_tool_call(sdk: openai.OpenAI, model: str) -> None:
    answer = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Rome?"}], max_tokens=64,
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])  # type: ignore[index]


def test_required_with_two_tools(sdk: openai.OpenAI, model: str) -> None:
    answer = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Time in Tokyo?"}], max_tokens=96,
        tools=[WEATHER, TIME], tool_choice="required",  # type: ignore[list-item]
        # One call: with a list open-ended, the 135M model repeated the same call until
        # max_tokens (seen on vLLM: finish_reason "length", an unfinished list).
        parallel_tool_calls=False,
    )  # fmt: skip
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
    for call in choice.message.tool_calls or []:
        jsonschema.validate(json.loads(call.function.arguments),  # type: ignore[union-attr]
                            tools[call.function.name])  # type: ignore[union-attr]
    assert len(choice.message.tool_calls or []) == 1


def test_named_tool_call_streamed(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Rome?"}], max_tokens=64,
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,  # type: ignore[list-item]
    )  # fmt: skip
    names, arguments = [], []
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if call.function and call.function.name:
                names.append(call.function.name)
            if call.function and call.function.arguments:
                arguments.append(call.function.arguments)
    assert names == ["get_weather"]
    jsonschema.validate(json.loads("".join(arguments)), WEATHER["function"]["parameters"])  # type: ignore[index]


def test_auto_tool_choice_is_refused(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError, match="tool parser"):
        sdk.chat.completions.create(model=model, messages=ASK, tools=[WEATHER])  # type: ignore[list-item]


def test_a_schema_the_backend_refuses_is_a_400_naming_it(any_server: Server) -> None:
    # A grammar neither engine's parser takes: the refusal names the field and the backend.
    body = {"messages": ASK, "structured_outputs": {"grammar": "root ::= ( unclosed"}}
    with any_server.client() as http:
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "structured_outputs"
        assert "structured_outputs.grammar" in error["message"]
        assert http.get("/").status_code == 200  # the engine lives on


def test_sdk_sees_the_refusal(sdk: openai.OpenAI, model: str) -> None:
    bad = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    with pytest.raises(openai.BadRequestError, match=r"response_format\.json_schema\.schema"):
        sdk.chat.completions.create(
            model=model, messages=ASK, max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bad}},
        )  # fmt: skip


def test_unserved_field_is_refused_by_the_real_server(any_server: Server) -> None:
    with httpx.Client(base_url=any_server.url, timeout=60) as http:
        response = http.post("/v1/chat/completions",
                             json={"messages": ASK, "logit_bias": {"42": 100}})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logit_bias"
