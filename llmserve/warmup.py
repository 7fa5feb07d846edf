"""Warm-up prompts: the first WARMUP_SAMPLES questions of a data file."""

from __future__ import annotations

import json
from pathlib import Path


def warmup_prompts(path: Path | None, samples: int) -> list[str]:
    if path is None or samples <= 0:
        return []
    prompts: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if len(prompts) >= samples:
                break
            if line.strip():
                item = json.loads(line)
                prompts.append(item["messages"][0]["content"])
    return prompts
