"""OpenAI's response objects, built from the engine's Generation (whole answers) and Delta
(streamed steps): chat.completion, text_completion, their chunks, and usage."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from llmserve.engines.base import Generation, TokenLogprobs
from llmserve.server.openai import logprobs as shapes


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def generation_usage(result: Generation) -> dict[str, int]:
    return usage(sum(result.prompt_tokens), sum(result.completion_tokens))


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
        """The whole answer: chat.completion (one choice) or text_completion (one per prompt).
        Completions: `echo`, the prompts' texts put before the answers (with their tokens'
        logprobs first in `logprobs`, which asks for the legacy logprobs object). Chat:
        `logprobs` asks for chat's logprobs object with `top_logprobs` alternatives."""
        if self.chat:
            choices = [
                {"index": 0, "message": {"role": "assistant", "content": result.texts[0]},
                 "logprobs": shapes.chat(self._tokens(result, 0, False), top_logprobs)
                 if logprobs else None,
                 "finish_reason": result.finish_reasons[0] or "stop"}
            ]  # fmt: skip
            body = self._object("chat.completion", choices)
        else:
            choices = [
                {"index": i, "text": (echo[i] if echo else "") + text,
                 "logprobs": shapes.legacy(self._tokens(result, i, echo is not None))
                 if logprobs else None,
                 "finish_reason": reason or "stop"}
                for i, (text, reason) in enumerate(
                    zip(result.texts, result.finish_reasons, strict=True)
                )
            ]  # fmt: skip
            body = self._object("text_completion", choices)
        return {**body, "usage": generation_usage(result)}

    @staticmethod
    def _tokens(result: Generation, index: int, echo: bool) -> TokenLogprobs:
        """The tokens a completion choice's logprobs list: the echoed prompt's, then the
        answer's."""
        prompt = result.prompt_logprobs[index] if echo and result.prompt_logprobs else None
        answer = result.logprobs[index] if result.logprobs else None
        return [*(prompt or []), *(answer or [])]

    def chunk(
        self, text: str | None = None, finish_reason: str | None = None, role: bool = False
    ) -> dict[str, Any]:
        """One streamed step: chat.completion.chunk (a delta) or text_completion (text)."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "logprobs": None,
                      "finish_reason": finish_reason}  # fmt: skip
            return self._object("chat.completion.chunk", [choice])
        choice = {"index": 0, "text": text or "", "logprobs": None,
                  "finish_reason": finish_reason}  # fmt: skip
        return self._object("text_completion", [choice])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """stream_options.include_usage: the last chunk before [DONE], with no choices."""
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._object(kind, []), "usage": usage(prompt_tokens, completion_tokens)}
