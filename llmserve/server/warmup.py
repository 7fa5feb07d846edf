"""Warm-up prompts: the first WARMUP_SAMPLES questions of a data file (any judge format)."""

from __future__ import annotations

from pathlib import Path

from llmserve.dataset import load_items


def warmup_prompts(path: Path | None, samples: int) -> list[str]:
    if path is None or samples <= 0:
        return []
    return [item.question for item in load_items(path)[:samples]]
