"""The chat examples a fine-tune learns from: data.jsonl's items of one split, as
`{"messages": [user, assistant]}` rows (the conversational shape trl's SFTTrainer reads).

The test split is refused: it is what the judge scores, so training on it would grade the
adapter on answers it memorised.
"""

from __future__ import annotations

from pathlib import Path

from llmserve.dataset import load_items, select
from llmserve.errors import LlmserveError

FORBIDDEN_SPLIT = "test"

Conversation = dict[str, list[dict[str, str]]]


def conversations(path: Path, split: str, limit: int | None) -> list[Conversation]:
    """The items of `split` in `path`, as chat rows; the test split is a LlmserveError."""
    if split in (FORBIDDEN_SPLIT, "all"):
        raise LlmserveError(
            f"--split {split!r} would train on the test split the judge scores; "
            "use the tune split (or data without splits)"
        )
    items = select(load_items(path), split, limit)
    return [
        {
            "messages": [
                {"role": "user", "content": item.question},
                {"role": "assistant", "content": item.reference},
            ]
        }
        for item in items
    ]
