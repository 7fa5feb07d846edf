"""Token logprobs from llama.cpp's logits (llama_get_logits_ith of a batch position that
asked for logits): the log-softmax over the vocabulary, the token's own value and the K most
likely tokens. Raw logprobs, before any sampler step, as vLLM's default reports them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from llmserve.engines.base import TokenLogprob, TokenLogprobs

# (token id, its logprob, the K most likely (id, logprob) pairs, best first)
Score = tuple[int, float, tuple[tuple[int, float], ...]]


def score(llama_cpp: Any, ctx: Any, index: int, n_vocab: int, token: int, k: int) -> Score:
    """`token`'s logprob at batch position `index`, and the top `k`."""
    pointer = llama_cpp.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)
    shifted = logits - logits.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    top: tuple[tuple[int, float], ...] = ()
    if k > 0:
        best = np.argpartition(-logprobs, k)[:k] if k < n_vocab else np.arange(n_vocab)
        best = best[np.argsort(-logprobs[best])]
        top = tuple((int(i), float(logprobs[i])) for i in best)
    return token, float(logprobs[token]), top


def token_logprobs(scores: list[Score], decode: Callable[[int], str]) -> TokenLogprobs:
    """Scores as TokenLogprobs; `top` holds the token itself and the K most likely."""
    tokens = []
    for token, logprob, top in scores:
        pairs = dict(top)
        pairs.setdefault(token, logprob)
        ranked = sorted(pairs.items(), key=lambda item: item[1], reverse=True)
        tokens.append(TokenLogprob(decode(token), token, logprob,
                                   tuple((decode(i), v) for i, v in ranked)))  # fmt: skip
    return tokens
