"""`tools` with `tool_choice` naming a function or `required`: the answer is constrained to
the function's parameter schema (or to a list of {name, parameters} calls, as vLLM does)
through the engine's structured output, so it works for any model, and comes back in
OpenAI's `tool_calls` shape, streamed too. `auto` needs a tool parser, which this service
does not configure: a 400 that says so (vLLM answers the same without --tool-call-parser)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from llmserve.engines.base import Generation
from llmserve.engines.structured import StructuredSpec
from llmserve.server.openai.errors import OpenAIError
from llmserve.server.openai.objects import Answer
from llmserve.server.openai.structured import Strict, unconstrained

NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class Function(Strict):
    name: str = Field(pattern=NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # always enforced


class Tool(Strict):
    type: Literal["function"]
    function: Function


class FunctionName(Strict):
    name: str = Field(pattern=NAME)


class NamedTool(Strict):
    type: Literal["function"]
    function: FunctionName


class ToolFields(Strict):
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedTool | None = Field(
        None, description="A named function or required; auto (the default with tools) is a "
        "400: no tool parser is configured."
    )  # fmt: skip
    parallel_tool_calls: bool | None = Field(None, description="false: required makes one call.")

    def tool_mode(self) -> ToolMode | None:
        """How tools shape this answer; None: they do not (OpenAIError 400 for auto)."""
        choice = self.tool_choice
        tools = {tool.function.name: tool.function for tool in self.tools or ()}
        if not tools:
            if isinstance(choice, NamedTool) or choice == "required":
                raise OpenAIError(400, "tool_choice needs a non-empty tools list", "tool_choice")
            return None
        if choice == "none":
            return None
        if choice is None or choice == "auto":
            raise OpenAIError(
                400, "tool_choice=auto (the default with tools) needs a tool parser, and none "
                "is configured: name a function in tool_choice or send tool_choice=required",
                "tool_choice",
            )  # fmt: skip
        if choice == "required":
            one = self.parallel_tool_calls is False
            return ToolMode(None, StructuredSpec("json", json.dumps(calls_schema(tools, one)),
                                                 "tools"))  # fmt: skip
        function = tools.get(choice.function.name)
        if function is None:
            raise OpenAIError(
                400, f"tool_choice names {choice.function.name!r}, which is not in tools",
                "tool_choice",
            )  # fmt: skip
        schema = function.parameters or {"type": "object", "properties": {}}
        return ToolMode(function.name, StructuredSpec(
            "json", json.dumps(schema), f"tools[{list(tools).index(function.name)}]"
            ".function.parameters"))  # fmt: skip


def calls_schema(tools: dict[str, Function], one: bool) -> dict[str, Any]:
    """A non-empty list of calls, each {name, parameters} of one tool (vLLM's shape)."""
    return {
        "type": "array",
        "minItems": 1,
        **({"maxItems": 1} if one else {}),
        "items": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "enum": [name]},
                        "parameters": function.parameters or {"type": "object"},
                    },
                    "required": ["name", "parameters"],
                }
                for name, function in tools.items()
            ]
        },
    }


def _call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": arguments}}  # fmt: skip


@dataclass(frozen=True)
class ToolMode:
    """`name`: the named function (its arguments are the whole answer); None: `required`
    (the answer is a JSON list of {name, parameters})."""

    name: str | None
    spec: StructuredSpec

    def calls(self, text: str) -> list[dict[str, Any]] | None:
        """The tool calls in an answer; None when a `required` answer is not a whole list
        (cut at max_tokens)."""
        if self.name is not None:
            return [_call(self.name, text)]
        try:
            items = json.loads(text)
            return [_call(item["name"], json.dumps(item["parameters"])) for item in items]
        except (ValueError, TypeError, KeyError):
            return None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat.completion whose messages carry tool_calls instead of content."""
        for choice in body["choices"]:
            calls = self.calls(choice["message"]["content"])
            if calls is None:
                continue
            choice["message"] = {"role": "assistant", "content": None, "tool_calls": calls}
            if self.name is None:
                choice["finish_reason"] = "tool_calls"
        return body


@dataclass(frozen=True)
class ToolAnswer(Answer):
    """Chunks with tool_calls deltas: a named function's arguments as they come; `required`'s
    calls whole in the finishing chunk (their list must be complete to be split)."""

    mode: ToolMode | None = None
    # The text so far of each choice (mutable record; n > 1 streams several).
    seen: dict[int, list[str]] = field(default_factory=dict)

    def complete(
        self,
        result: Generation,
        echo: list[str] | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
    ) -> dict[str, Any]:
        body = super().complete(result, echo, logprobs, top_logprobs)
        return body if self.mode is None else self.mode.complete(body)

    def chunk(
        self,
        text: str | None = None,
        finish_reason: str | None = None,
        role: bool = False,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self.mode is None or role or (text is None and finish_reason is None):
            return super().chunk(text, finish_reason, role, index, logprobs)
        body = super().chunk(None, finish_reason, role, index, logprobs)
        delta = body["choices"][0]["delta"]
        seen = self.seen.setdefault(index, [])
        if text:
            if self.mode.name is not None:
                call: dict[str, Any] = {"index": 0, "function": {"arguments": text}}
                if not seen:
                    call = {**_call(self.mode.name, text), "index": 0}
                delta["tool_calls"] = [call]
            seen.append(text)
        elif finish_reason is not None and self.mode.name is None:
            calls = self.mode.calls("".join(seen))
            if calls is not None:
                delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(calls)]
                body["choices"][0]["finish_reason"] = "tool_calls"
            else:
                delta["content"] = "".join(seen)
        return body


def describe() -> list[dict[str, Any]]:
    """The conditions between tools, tool_choice and the other constraints, for the OpenAPI
    description: with tools, tool_choice must be given and not auto (no tool parser); a tool
    call (required or a named function) takes no response_format or structured_outputs
    constraint. Without tools: none, auto or nothing. A named function must be one of tools,
    which a schema cannot say (a 400 naming it, as for a token id outside the vocabulary)."""
    null = {"type": "null"}
    with_tools = {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}}
    not_auto = {"not": {"anyOf": [null, {"const": "auto"}]}}
    a_call = {"not": {"anyOf": [null, {"enum": ["none", "auto"]}]}}
    without_tools = {"anyOf": [null, {"enum": ["none", "auto"]}]}
    return [
        {
            "if": with_tools,
            "then": {"required": ["tool_choice"], "properties": {"tool_choice": not_auto}},
            "else": {"properties": {"tool_choice": without_tools}},
        },
        {
            "if": {"allOf": [with_tools, {"required": ["tool_choice"],
                                          "properties": {"tool_choice": a_call}}]},
            "then": unconstrained(),
        },
    ]  # fmt: skip
