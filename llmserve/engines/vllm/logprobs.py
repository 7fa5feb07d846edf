"""vLLM's logprobs (prompt and sample) as the engine seam's TokenLogprob lists.

vLLM gives, per position, a dict {token id: Logprob(logprob, rank, decoded_token)} holding
the position's own token and the K most likely ones (SamplingParams.logprobs /
prompt_logprobs = K); a prompt's first position is None (nothing predicts it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmserve.engines.base import TokenLogprob, TokenLogprobs

Decode = Callable[[int], str]


def _text(token_id: int, entry: Any, decode: Decode) -> str:
    decoded = getattr(entry, "decoded_token", None)
    return str(decoded) if decoded is not None else decode(token_id)


def _token(token_id: int, position: Any, decode: Decode) -> TokenLogprob:
    if position is None:
        return TokenLogprob(decode(token_id), token_id, None)
    ranked = sorted(position.items(), key=lambda item: item[1].logprob, reverse=True)
    top = tuple((_text(tid, entry, decode), float(entry.logprob)) for tid, entry in ranked)
    own = position.get(token_id)
    return TokenLogprob(
        _text(token_id, own, decode), token_id, None if own is None else float(own.logprob), top
    )


def token_logprobs(ids: Sequence[int], positions: Any, decode: Decode) -> TokenLogprobs:
    """One TokenLogprob per id; `positions` is vLLM's prompt_logprobs or logprobs (one
    entry per id, the prompt's first None)."""
    return [_token(tid, positions[i], decode) for i, tid in enumerate(ids)]
