"""Shaping applied around an engine call (engine-neutral, used by /predict and /v1).

With a length router, prompts of one list may get different max_tokens: they are grouped by
routed max_tokens, each group generated concurrently (asyncio.gather; engines batch
concurrent calls), and the answers put back in order. Token counts stay the engine's (so
X-Output-Tokens is what was generated); post-processing changes only the texts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from pathlib import Path

from llmserve.engines.base import Generation, Prompt, RawText, Sampling, TokenIds, TokenLogprobs
from llmserve.shaping.hint import add_hint
from llmserve.shaping.postprocess import shape_text
from llmserve.shaping.router import LengthRouter, load_router
from llmserve.shaping.settings import ShapingSettings

Generate = Callable[[list[Prompt], Sampling], Awaitable[Generation]]


@cache
def router_for(path: Path) -> LengthRouter:
    return load_router(path)


def prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, RawText):
        return prompt.text
    if isinstance(prompt, TokenIds):  # no text to route on: the router sees an empty one
        return ""
    return " ".join(str(m["content"]) for m in prompt if m["role"] == "user")


def postprocess(texts: list[str], shaping: ShapingSettings) -> list[str]:
    return [
        shape_text(
            text,
            trim=shaping.trim_unfinished,
            repeats=shaping.cut_repeats,
            max_sentences=shaping.max_sentences,
        )
        for text in texts
    ]


def merge(parts: list[tuple[list[int], Generation]], prompts: int, n: int = 1) -> Generation:
    """One Generation in the original order from per-group generations (each group's
    `indices` are prompts; each prompt has `n` choices)."""
    count = prompts * n
    texts: list[str] = [""] * count
    prompt_tokens = [0] * count
    completion_tokens = [0] * count
    finish_reasons: list[str | None] = [None] * count
    logprobs: list[TokenLogprobs | None] = [None] * count
    prompt_logprobs: list[TokenLogprobs | None] = [None] * count
    for prompt_indices, result in parts:
        indices = [p * n + i for p in prompt_indices for i in range(n)]
        for position, index in enumerate(indices):
            texts[index] = result.texts[position]
            prompt_tokens[index] = result.prompt_tokens[position]
            completion_tokens[index] = result.completion_tokens[position]
            finish_reasons[index] = result.finish_reasons[position]
            if result.logprobs is not None:
                logprobs[index] = result.logprobs[position]
            if result.prompt_logprobs is not None:
                prompt_logprobs[index] = result.prompt_logprobs[position]
    ttfts = [r.ttft_seconds for _, r in parts if r.ttft_seconds is not None]
    return Generation(
        texts=texts,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reasons=finish_reasons,
        engine_seconds=max(r.engine_seconds for _, r in parts),
        ttft_seconds=min(ttfts) if ttfts else None,
        logprobs=logprobs if any(r.logprobs is not None for _, r in parts) else None,
        prompt_logprobs=prompt_logprobs
        if any(r.prompt_logprobs is not None for _, r in parts)
        else None,
        n=n,
    )


async def shaped_generate(
    generate: Generate,
    prompts: Sequence[Prompt],
    sampling: Sampling,
    shaping: ShapingSettings,
    route: bool = True,
) -> Generation:
    """Generate `prompts` with routing (when `route` and LENGTH_ROUTER is set), the budget
    hint and post-processing as `shaping` enables them."""
    limits = [sampling.max_tokens] * len(prompts)
    if route and shaping.length_router is not None:
        router = router_for(shaping.length_router)
        limits = [router.route(prompt_text(p), sampling.max_tokens) for p in prompts]
    if shaping.budget_hint:
        prompts = [add_hint(p, limit) for p, limit in zip(prompts, limits, strict=True)]
    groups: dict[int, list[int]] = {}
    for index, limit in enumerate(limits):
        groups.setdefault(limit, []).append(index)
    calls = [
        generate([prompts[i] for i in indices], dataclasses.replace(sampling, max_tokens=limit))
        for limit, indices in groups.items()
    ]
    results = await asyncio.gather(*calls)
    merged = merge(list(zip(groups.values(), results, strict=True)), len(prompts), sampling.n)
    return dataclasses.replace(merged, texts=postprocess(merged.texts, shaping))
