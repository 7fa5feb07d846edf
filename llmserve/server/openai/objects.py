"""OpenAI's response objects, built from the engine's Generation (whole answers) and Delta
(streamed steps): chat.completion, text_completion, their chunks, and usage."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from llmserve.engines.base import Choice, Generation, TokenLogprobs
from llmserve.server.openai import logprobs as shapes


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def generation_usage(result: Generation) -> dict[str, int]:
    """All choices' tokens; each prompt's counted once (OpenAI's and vLLM's usage)."""
    return usage(result.input_tokens, result.output_tokens)


@dataclass(frozen=True)
class Answer:
    """What every object of one answer shares: its id, creation time and model name."""

    model: str
    chat: bool
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl" if self.chat else "cmpl"
            object.__setattr__(self, "id", f"{prefix}-{uuid.uuid4().hex}")

    def _object(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "choices": choices}  # fmt: skip

    def complete(
        self,
        result: Generation,
        echo: list[str] | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
    ) -> dict[str, Any]:
        """The whole answer: chat.completion (n choices) or text_completion (n per prompt;
        choice prompt_index * n + i). Completions: `echo`, the prompts' texts put before the
        answers (with their tokens' logprobs first in `logprobs`, which asks for the legacy
        logprobs object). Chat: `logprobs` asks for chat's logprobs object with
        `top_logprobs` alternatives."""
        if self.chat:
            choices = [
                {"index": c.index, "message": {"role": "assistant", "content": c.text},
                 "logprobs": shapes.chat(c.logprobs or [], top_logprobs) if logprobs else None,
                 "finish_reason": c.finish_reason or "stop"}
                for c in result.choices
            ]  # fmt: skip
            body = self._object("chat.completion", choices)
        else:
            choices = [
                {"index": c.index, "text": (echo[c.prompt_index] if echo else "") + c.text,
                 "logprobs": shapes.legacy(self._tokens(c, echo is not None))
                 if logprobs else None,
                 "finish_reason": c.finish_reason or "stop"}
                for c in result.choices
            ]  # fmt: skip
            body = self._object("text_completion", choices)
        return {**body, "usage": generation_usage(result)}

    @staticmethod
    def _tokens(choice: Choice, echo: bool) -> TokenLogprobs:
        """The tokens a completion choice's logprobs list: the echoed prompt's, then the
        answer's."""
        prompt = choice.prompt_logprobs if echo else None
        return [*(prompt or []), *(choice.logprobs or [])]

    def chunk(
        self,
        text: str | None = None,
        finish_reason: str | None = None,
        role: bool = False,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One streamed step of choice `index`: chat.completion.chunk (a delta) or
        text_completion (text), with its tokens' `logprobs` object (logprobs.Streamed)."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "logprobs": logprobs,
                      "finish_reason": finish_reason}  # fmt: skip
            return self._object("chat.completion.chunk", [choice])
        choice = {"index": index, "text": text or "", "logprobs": logprobs,
                  "finish_reason": finish_reason}  # fmt: skip
        return self._object("text_completion", [choice])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """stream_options.include_usage: the last chunk before [DONE], with no choices (all
        choices' completion tokens)."""
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._object(kind, []), "usage": usage(prompt_tokens, completion_tokens)}
