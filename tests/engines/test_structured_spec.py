"""The structured-output constraint without an engine: it crosses the process wire, its
refusal comes back as itself, llama.cpp's translation, and the tool_calls shapes."""

from __future__ import annotations

import json

import pytest

from llmserve.engines.base import Sampling, StructuredRefused
from llmserve.engines.process import wire
from llmserve.engines.structured import StructuredSpec
from llmserve.server.openai.tools import ToolAnswer, ToolMode


def test_sampling_with_a_constraint_crosses_the_wire() -> None:
    spec = StructuredSpec("json", '{"type": "object"}', "response_format.json_schema.schema")
    sampling = Sampling(max_tokens=9, structured=spec)
    back = wire.decode_sampling(json.loads(json.dumps(wire.encode_sampling(sampling))))
    assert back == sampling and isinstance(back.structured, StructuredSpec)


def test_a_refusal_crosses_the_wire_as_itself() -> None:
    error = StructuredRefused("structured_outputs.grammar", "cannot parse")
    back = wire.decode_error(json.loads(json.dumps(wire.encode_error(error))))
    assert isinstance(back, StructuredRefused)
    assert (back.param, str(back)) == (error.param, str(error))


def test_llamacpp_grammars() -> None:
    pytest.importorskip("llama_cpp")
    from llmserve.engines.llamacpp.grammar import gbnf

    assert gbnf(StructuredSpec("choice", '["yes", "n\\"o"]')) == 'root ::= "yes" | "n\\"o"'
    assert "root ::=" in gbnf(StructuredSpec("json", '{"type": "object", "properties": '
                                             '{"a": {"enum": ["x", "y"]}}}'))  # fmt: skip
    with pytest.raises(StructuredRefused, match=r"^structured_outputs\.regex: .*no regex"):
        gbnf(StructuredSpec("regex", "a+", "structured_outputs.regex"))


def test_tool_answers() -> None:
    named = ToolMode("f", StructuredSpec("json", "{}"))
    answer = ToolAnswer("m", chat=True, mode=named)
    first = answer.chunk('{"a"')["choices"][0]["delta"]["tool_calls"][0]
    assert first["function"] == {"name": "f", "arguments": '{"a"'} and first["index"] == 0
    later = answer.chunk(": 1}")["choices"][0]["delta"]["tool_calls"][0]
    assert later == {"index": 0, "function": {"arguments": ": 1}"}}
    required = ToolAnswer("m", chat=True, mode=ToolMode(None, StructuredSpec("json", "{}")))
    assert required.chunk('[{"name": "g", ')["choices"][0]["delta"] == {}
    required.chunk('"parameters": {"z": 2}}]')
    end = required.chunk(finish_reason="stop")["choices"][0]
    assert end["finish_reason"] == "tool_calls"
    (call,) = end["delta"]["tool_calls"]
    assert call["function"] == {"name": "g", "arguments": '{"z": 2}'}
