"""ShapingSettings: the answer-shaping options, each off by default (llmserve.shaping)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class ShapingSettings(BaseModel):
    """Answer shaping: per-prompt length, post-processing, budget hint (all off by default)."""

    length_router: Path | None = Field(
        None,
        description="A length-router file (`llmserve shape fit`): each /predict prompt gets "
        "max_tokens from its nearest tune-split questions, clamped to MAX_NEW_TOKENS. Unset: off.",
    )
    trim_unfinished: bool = Field(
        False,
        description="Cut an answer's unfinished last sentence (/predict and non-streamed /v1).",
    )
    cut_repeats: bool = Field(
        False,
        description="Cut an answer where a sentence repeats (a generation loop).",
    )
    max_sentences: int = Field(
        0, ge=0, description="Keep at most this many sentences of an answer; 0: no limit."
    )
    budget_hint: bool = Field(
        False,
        description='Add "Answer within N tokens." to the user turn (N: the request\'s max '
        "tokens, or the routed length).",
    )
