"""Token logprobs in OpenAI's shapes: the legacy completions one (what lm-eval's
local-completions reads: `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`, as vLLM
writes them) and chat's (`content`: token, logprob, bytes, top_logprobs)."""

from __future__ import annotations

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
