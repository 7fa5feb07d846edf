"""Nothing silent: every field of the /v1 request models is honoured (it reaches the engine's
Sampling, or shapes the answer), refused by name with a 400, or has no effect on the answer;
and every parameter the openai SDK defines for chat and completions is one of the model's
fields or has no effect. Walks the models, so a field added later must be placed here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai.types import completion_create_params as completion_params
from openai.types.chat import completion_create_params as chat_params

from llmserve.server.openai.refused import NO_EFFECT
from llmserve.server.openai.requests import ChatRequest, CompletionRequest
from tests.fake_engine import FakeEngine, FakeEngineFactory
from tests.http.test_openai_http import USER, assert_openai_error, make_settings, serve

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": SCHEMA}}
# Honoured: a value, and the Sampling field it must change (None: it shapes the answer, or
# selects what is generated, and other tests prove it).
HONOURED: dict[str, tuple[Any, str | None]] = {
    "model": ("tiny-chat", None), "messages": (USER, None), "prompt": ("hi", None),
    "stream": (False, None), "stream_options": (None, None),
    "max_tokens": (5, "max_tokens"), "max_completion_tokens": (6, "max_tokens"),
    "temperature": (0.5, "temperature"), "top_p": (0.5, "top_p"), "top_k": (3, "top_k"),
    "frequency_penalty": (0.5, "frequency_penalty"),
    "presence_penalty": (0.5, "presence_penalty"),
    "repetition_penalty": (1.2, "repetition_penalty"), "stop": (["zz"], "stop"),
    "seed": (7, "seed"), "ignore_eos": (True, "ignore_eos"), "n": (2, "n"),
    "response_format": ({"type": "json_schema",
                         "json_schema": {"name": "s", "schema": SCHEMA}}, "structured"),
    "structured_outputs": ({"regex": "[ab]+"}, "structured"),
    "tools": ([TOOL], None),  # with tool_choice: a constraint (below)
    "tool_choice": ({"type": "function", "function": {"name": "f"}}, "structured"),
    "parallel_tool_calls": (False, None),  # with required: one call (tools.calls_schema)
    "logprobs": (True, "logprobs"), "top_logprobs": (2, "logprobs"),  # with logprobs (below)
    "echo": (True, "prompt_logprobs"),
}  # fmt: skip
# Refused: a value that asks for something, refused with a 400 whose param is the field.
REFUSED: dict[str, Any] = {
    "best_of": 2, "logit_bias": {"1": 5},
    "functions": [{"name": "f"}], "function_call": "auto",
    "audio": {"voice": "alloy", "format": "mp3"}, "modalities": ["text", "audio"],
    "prediction": {"type": "content", "content": "x"}, "reasoning_effort": "high",
    "verbosity": "high", "web_search_options": {}, "moderation": {"x": 1}, "suffix": "end",
    "guided_json": SCHEMA, "guided_regex": "a+", "guided_choice": ["a"],
    "guided_grammar": "root ::= \"a\"",
}  # fmt: skip
COMPLETION_VALUES = {"logprobs": 1}  # an integer there (honoured)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeEngineFactory]]:
    with serve(make_settings(tmp_path_factory.mktemp("fields"))) as (url, factory, _):
        yield url, factory


@pytest.mark.parametrize("model", [ChatRequest, CompletionRequest])
def test_every_field_has_a_role(model: type[ChatRequest | CompletionRequest]) -> None:
    for name, field in model.model_fields.items():
        name = field.alias or name
        roles = [name in HONOURED, name in REFUSED, name in NO_EFFECT]
        assert roles.count(True) == 1, f"{model.__name__}.{name}: place it in one role"


@pytest.mark.parametrize(
    ("model", "params"),
    [(ChatRequest, chat_params.CompletionCreateParamsBase),
     (CompletionRequest, completion_params.CompletionCreateParamsBase)],
)  # fmt: skip
def test_every_sdk_parameter_is_a_field_or_without_effect(model: type, params: type) -> None:
    fields = {field.alias or name for name, field in model.model_fields.items()}
    missing = set(params.__annotations__) - fields - NO_EFFECT
    assert not missing, f"{model.__name__} would ignore {sorted(missing)} silently"


def _post(http: httpx.Client, chat: bool, extra: dict[str, Any]) -> httpx.Response:
    path = "/v1/chat/completions" if chat else "/v1/completions"
    base: dict[str, Any] = {"messages": USER} if chat else {"prompt": "hi"}
    return http.post(path, json={**base, **extra})


@pytest.mark.parametrize("chat", [True, False])
def test_refused_fields_get_a_400_naming_them(
    served: tuple[str, FakeEngineFactory], chat: bool
) -> None:
    model = ChatRequest if chat else CompletionRequest
    names = {field.alias or name for name, field in model.model_fields.items()}
    with httpx.Client(base_url=served[0], timeout=30) as http:
        for name in sorted(names & set(REFUSED)):
            value = REFUSED[name] if chat else COMPLETION_VALUES.get(name, REFUSED[name])
            message = assert_openai_error(_post(http, chat, {name: value}), 400, name)
            assert name in message


@pytest.mark.parametrize("chat", [True, False])
def test_honoured_fields_reach_the_engine(
    served: tuple[str, FakeEngineFactory], chat: bool
) -> None:
    model = ChatRequest if chat else CompletionRequest
    names = {field.alias or name for name, field in model.model_fields.items()}
    engine: FakeEngine = served[1].engine
    with httpx.Client(base_url=served[0], timeout=30) as http:
        for name in sorted(names & set(HONOURED)):
            value, target = HONOURED[name]
            if target is None:
                continue
            extra = {name: value if chat else COMPLETION_VALUES.get(name, value)}
            if name == "tool_choice":
                extra["tools"] = [TOOL]
            if name == "top_logprobs":
                extra["logprobs"] = True
            response = _post(http, chat, extra)
            assert response.status_code == 200, (name, response.text)
            sampling = engine.calls[-1].sampling
            default = engine.sampling
            assert getattr(sampling, target) != getattr(default, target), name


def test_tool_choice_auto_and_unknown_names_are_refused(
    served: tuple[str, FakeEngineFactory],
) -> None:
    with httpx.Client(base_url=served[0], timeout=30) as http:
        message = assert_openai_error(_post(http, True, {"tools": [TOOL]}), 400, "tool_choice")
        assert "tool parser" in message
        named = {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}
        assert "'g'" in assert_openai_error(_post(http, True, named), 400, "tool_choice")
        bad = {"response_format": {"type": "yaml"}}
        assert "yaml" in assert_openai_error(_post(http, True, bad), 400, "response_format")
        both = {"structured_outputs": {"regex": "a", "choice": ["a"]}}
        assert_openai_error(_post(http, True, both), 400, "structured_outputs")
        both = {"structured_outputs": {"regex": "a"}, "response_format": {"type": "json_object"}}
        assert_openai_error(_post(http, True, both), 400, "structured_outputs")
