"""Token logprobs in OpenAI's shapes: the legacy completions one (what lm-eval's
local-completions reads: `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`, as vLLM
writes them) and chat's (`content`: token, logprob, bytes, top_logprobs), for a whole answer
and for each chunk of a streamed one (Streamed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmserve.engines.base import TokenLogprob

# JSON has no -inf: OpenAI and vLLM write a token that cannot follow as -9999.0.
FLOOR = -9999.0


def _value(logprob: float) -> float:
    return max(logprob, FLOOR)


def legacy(tokens: list[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """`tokens` (an echoed prompt's, then the answer's) in the legacy shape; text offsets
    count from `offset`. A prompt's first token has null logprob and null top_logprobs."""
    offsets: list[int] = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [None if t.logprob is None else _value(t.logprob) for t in tokens],
        "top_logprobs": [
            None if t.logprob is None else {text: _value(v) for text, v in t.top}
            for t in tokens
        ],
        "text_offset": offsets,
    }


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": _value(logprob), "bytes": list(token.encode())}


def chat(tokens: list[TokenLogprob], top: int) -> dict[str, Any]:
    """Chat's `logprobs`: each answer token with its `top` most likely alternatives."""
    return {"content": [
        {**_entry(t.token, t.logprob or 0.0),
         "top_logprobs": [_entry(text, v) for text, v in t.top[:top]]}
        for t in tokens
    ]}  # fmt: skip


@dataclass
class Streamed:
    """The logprobs of each chunk of a streamed answer: its tokens (a Delta's) in chat's
    shape with `top` alternatives, or in the legacy one, whose text offsets continue across a
    choice's chunks (counted in tokens' text, as vLLM's are). A choice's chunks, concatenated,
    give what the whole answer's logprobs object holds."""

    chat_shape: bool
    top: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # choice -> its next text offset

    def __call__(self, tokens: list[TokenLogprob], index: int) -> dict[str, Any]:
        if self.chat_shape:
            return chat(tokens, self.top)
        offset = self.offsets.get(index, 0)
        self.offsets[index] = offset + sum(len(t.token) for t in tokens)
        return legacy(tokens, offset)
