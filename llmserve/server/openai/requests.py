"""The /v1 request bodies as pydantic models, and the per-request Sampling they give.

Strict types (no "0.5" for a number, no 1 for a boolean, no 1.5 for an integer; 604.0 is
the integer 604, as JSON Schema counts it and as schemathesis sends it), finite
numbers, OpenAI's ranges. Fields OpenAI clients send that do not change the answer (user,
metadata, ...) and fields unknown here are ignored; those that would change it and are not
supported (echo with stream, best_of > 1) are refused by name, as is text no
tokenizer accepts (an unpaired surrogate).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from llmserve.engines.base import ChatMessage, Sampling
from llmserve.engines.structured import StructuredSpec
from llmserve.server.openai.errors import OpenAIError
from llmserve.server.openai.refused import RefusedChat, RefusedCompletion
from llmserve.server.openai.structured import StructuredFields
from llmserve.server.openai.tools import ToolFields, ToolMode
from llmserve.server.schema import SURROGATE, BadRequest, load_json

MAX_STOP = 16  # stop strings a request may carry (OpenAI allows 4; vLLM has no limit)
# The largest seed: the largest integer a JSON number holds exactly (a client that writes
# 2**63-1 as a double sends 2**63, one past what torch.Generator.manual_seed takes).
MAX_SEED = 2**53 - 1
# The most alternatives per token `logprobs` asks for: vLLM's default max_logprobs (20),
# above which its engine refuses the request.
MAX_LOGPROBS = 20
# The most choices `n` asks for per prompt: OpenAI's own limit (128). A request's choices
# (its prompts x n) must also fit MAX_WAITING_PROMPTS, else it could never be admitted.
MAX_N = 128


def _tokenizable(text: str) -> str:
    match = SURROGATE.search(text)
    if match:
        raise ValueError(f"has an unpaired surrogate at position {match.start()}")
    return text


def _integral(value: Any) -> Any:
    """A float with no fraction as the int it is (JSON does not tell 604.0 from 604)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integral = BeforeValidator(_integral)
# Bounds before the validator: after it, pydantic writes them to the schema as `ge`, not
# `minimum`, and schema-driven clients ignore them.
AtLeast1 = Annotated[int, Field(ge=1), Integral]
Text = Annotated[str, AfterValidator(_tokenizable)]
StopText = Annotated[str, Field(min_length=1), AfterValidator(_tokenizable)]
PromptText = StopText  # an empty raw prompt has no token for the model to read
TokenId = Annotated[int, Field(ge=0), Integral]
IdPrompt = Annotated[list[TokenId], Field(min_length=1)]  # a tokenized prompt (lm-eval's)


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    def unsupported(self) -> None:
        """OpenAIError for a field whose value is valid but not served (none here)."""


class TextPart(Strict):
    """OpenAI's content part `{"type": "text", "text": ...}` (the only kind served here)."""

    type: Literal["text"]
    text: Text


class Message(Strict):
    """One chat turn. "developer" is OpenAI's newer name for "system"."""

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart]

    def chat_message(self) -> ChatMessage:
        text = (
            self.content
            if isinstance(self.content, str)
            else "".join(part.text for part in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": text}


class StreamOptions(Strict):
    include_usage: bool = False


class Common(Strict):
    """What chat and completions requests share."""

    model: str | None = Field(
        None, description="The served model's name (GET /v1/models); absent: that one."
    )
    max_tokens: AtLeast1 | None = Field(
        None, description="Output tokens at most; lowered to what MAX_MODEL_LEN leaves."
    )
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    top_k: Annotated[int, Field(ge=-1), Integral] | None = Field(
        None, description="vLLM's extension; 0 or -1 disables it."
    )
    frequency_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    repetition_penalty: float | None = Field(
        None, gt=0, le=100, allow_inf_nan=False, description="vLLM's extension; 1 disables it."
    )
    stop: StopText | Annotated[list[StopText], Field(max_length=MAX_STOP)] | None = None
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), Integral] | None = None
    ignore_eos: bool | None = Field(
        None, description="vLLM's extension: generate max_tokens even past end-of-sequence."
    )
    n: Annotated[int, Field(ge=1, le=MAX_N), Integral] | None = Field(
        None,
        description=f"Choices per prompt (at most {MAX_N}), sampled independently; "
        "`seed` makes them repeatable.",
    )
    stream: bool = False
    stream_options: StreamOptions | None = None

    def output_limit(self) -> int | None:
        return self.max_tokens

    def sampling(self, defaults: Sampling, max_model_len: int) -> Sampling:
        """The service's defaults with this request's values on top."""
        return defaults.replace(**self.changes(max_model_len))

    def changes(self, max_model_len: int) -> dict[str, Any]:
        """The Sampling fields this request sets."""
        changes: dict[str, Any] = {}
        limit = self.output_limit()
        if limit is not None:  # more than MAX_MODEL_LEN can never be generated
            changes["max_tokens"] = min(limit, max_model_len)
        for name in (
            "temperature", "top_p", "frequency_penalty", "presence_penalty",
            "repetition_penalty", "seed", "ignore_eos", "n",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        if self.top_k is not None:
            changes["top_k"] = max(self.top_k, 0)
        if self.stop is not None:
            changes["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        return changes

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


R = TypeVar("R", bound=Strict)


class ChatRequest(Common, StructuredFields, ToolFields, RefusedChat):
    """POST /v1/chat/completions."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: AtLeast1 | None = Field(
        None, description="OpenAI's newer name for max_tokens; wins over it."
    )
    logprobs: bool | None = Field(None, description="Each answer token's logprob.")
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS), Integral] | None = Field(
        None, description="With logprobs: the K most likely tokens at each position."
    )

    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def unsupported(self) -> None:
        super().unsupported()
        if self.top_logprobs is not None and not self.logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs=true", "top_logprobs")
        self.refuse()
        self.constraint()

    def changes(self, max_model_len: int) -> dict[str, Any]:
        logprobs = (self.top_logprobs or 0) if self.logprobs else None
        return {**super().changes(max_model_len), "logprobs": logprobs}

    def constraint(self) -> tuple[StructuredSpec | None, ToolMode | None]:
        """The answer's structured-output constraint, and the tools mode it comes from."""
        mode, spec = self.tool_mode(), self.structured_spec()
        if mode is not None and spec is not None:
            raise OpenAIError(400, "a tool call cannot also take response_format or "
                              "structured_outputs", "tool_choice")  # fmt: skip
        return (mode.spec, mode) if mode is not None else (spec, None)

    def conversation(self) -> list[ChatMessage]:
        return [message.chat_message() for message in self.messages]


class CompletionRequest(Common, StructuredFields, RefusedCompletion):
    """POST /v1/completions: the prompt is sent as it is, without the chat template."""

    prompt: (
        PromptText
        | Annotated[list[PromptText], Field(min_length=1)]
        | IdPrompt
        | Annotated[list[IdPrompt], Field(min_length=1)]
    ) = Field(description="A text, texts, token ids, or lists of token ids.")
    max_tokens: Annotated[int, Field(ge=0), Integral] | None = Field(
        None, description="Output tokens at most; 0 (with echo) scores the prompt only."
    )
    echo: bool | None = Field(
        None, description="The prompt before the answer (with its tokens' logprobs)."
    )
    logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS), Integral] | None = Field(
        None, description="Each token's logprob and its K most likely alternatives."
    )
    best_of: AtLeast1 | None = Field(None, description="Only 1 is served: more is a 400.")

    def unsupported(self) -> None:
        super().unsupported()
        if self.best_of is not None and self.best_of > 1:
            raise OpenAIError(400, f"best_of={self.best_of} is not supported", "best_of")
        if self.max_tokens == 0 and not self.echo:
            raise OpenAIError(400, "max_tokens=0 needs echo=true (it scores the prompt only)",
                              "max_tokens")  # fmt: skip
        if self.stream and self.echo:
            raise OpenAIError(400, "echo=true is not supported with stream=true", "echo")
        self.refuse()
        self.structured_spec()

    def changes(self, max_model_len: int) -> dict[str, Any]:
        """Echo asks the engine for the prompt's tokens (their texts make the echoed text
        of a token-id prompt) with `logprobs` alternatives, as vLLM's echo does."""
        prompt_logprobs = (self.logprobs or 0) if self.echo else None
        return {**super().changes(max_model_len), "logprobs": self.logprobs,
                "prompt_logprobs": prompt_logprobs}  # fmt: skip

    @property
    def prompts(self) -> list[str] | list[list[int]]:
        """The prompts as a list: texts, or token-id lists."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and isinstance(prompt[0], int):
            return [prompt]  # type: ignore[list-item]
        return list(prompt)  # type: ignore[arg-type]


# Pydantic's names for the member of a union an error is about: left out of a field's path.
_UNION_TAG = ("str", "int", "bool", "float", "list[", "function-", "constrained-", "literal[")


def _parts(loc: tuple[int | str, ...]) -> list[int | str]:
    return [p for p in loc if isinstance(p, int) or not p.startswith(_UNION_TAG)]


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in _parts(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _shown(value: Any) -> str:
    text = ascii(value)  # no unpaired surrogate reaches the JSON encoder
    return text if len(text) <= 60 else text[:57] + "..."


def parse_body(body: bytes, model: type[R]) -> R:
    """The request, or OpenAIError 400 naming the field at fault (`param`: its top-level
    name; the message: its path, what is wrong and the value). The JSON is read by
    load_json, which refuses what json.loads accepts but nothing downstream can handle."""
    try:
        data = load_json(body)
    except BadRequest as error:
        raise OpenAIError(400, str(error)) from None
    if not isinstance(data, dict):
        raise OpenAIError(400, f"body must be a JSON object, got {type(data).__name__}")
    try:
        request = model.model_validate(data)
    except ValidationError as error:
        # The deepest problem; for a union (a string or a list), the member that got furthest,
        # and among equals one that is not a mere type mismatch (a too long list says more).
        problems = error.errors(include_url=False)
        first = max(
            problems,
            key=lambda p: (len(_parts(tuple(p["loc"]))), not str(p["type"]).endswith("_type")),
        )
        loc = tuple(first["loc"])
        path = _path(loc) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "string_unicode":  # pydantic's own check, before _tokenizable
            message = "has an unpaired surrogate (not valid Unicode)"
        got = "" if first["type"] == "missing" else f" (got {_shown(first.get('input'))})"
        raise OpenAIError(400, f"{path}: {message}{got}", str(loc[0]) if loc else None) from None
    request.unsupported()
    return request
