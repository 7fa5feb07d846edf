"""Calibration samples: drawn from data.jsonl's tune split only, templated and tokenized.

Each sample is a whole conversation (question and reference answer) in the served model's
chat template, so the activations seen while calibrating are those of the chat the service
runs. The set is written once as a directory (samples.jsonl + meta.json) and its meta is
copied into every variant's manifest, so a variant says exactly what calibrated it.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError
from llmserve.records import atomic_dir

SPLIT = "tune"  # the test split is what variants are scored on: never calibrate on it
SAMPLES = "samples.jsonl"
META = "meta.json"


@dataclass(frozen=True)
class CalibrationSet:
    directory: Path
    meta: dict[str, Any]

    @property
    def samples(self) -> Path:
        return self.directory / SAMPLES


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_calibration(
    data: Path, model_dir: Path, out: Path, count: int, max_length: int, seed: int
) -> CalibrationSet:
    """Pick `count` tune items at random (seeded), template, tokenize, truncate, write."""
    from transformers import AutoTokenizer

    from llmserve.dataset import load_items

    if count < 1:
        raise LlmserveError(f"--count must be at least 1, got {count}")
    if max_length < 16:
        raise LlmserveError(f"--max-length must be at least 16 tokens, got {max_length}")
    tune = [item for item in load_items(data) if item.split == SPLIT]  # LlmserveError if bad
    if not tune:
        raise LlmserveError(f"{data} has no items in split {SPLIT!r} to calibrate with")
    if count > len(tune):
        raise LlmserveError(
            f"--count {count} is more than the {len(tune)} {SPLIT} items in {data}")
    chosen = random.Random(seed).sample(tune, count)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)

    with atomic_dir(out) as partial:
        partial.mkdir()
        lengths = []
        with (partial / SAMPLES).open("w", encoding="utf-8") as file:
            for item in chosen:
                messages = [{"role": "user", "content": item.question},
                            {"role": "assistant", "content": item.reference}]
                text = tokenizer.apply_chat_template(messages, tokenize=False)
                # The template carries the special tokens already.
                ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
                lengths.append(len(ids))
                file.write(json.dumps({"id": item.id, "text": text, "input_ids": ids},
                                      ensure_ascii=False) + "\n")
        meta = {
            "data": str(data),
            "data_sha256": sha256(data),
            "split": SPLIT,
            "count": count,
            "max_length": max_length,
            "seed": seed,
            "tokenizer": str(model_dir),
            "ids": [item.id for item in chosen],
            "tokens": sum(lengths),
            "truncated": sum(1 for n in lengths if n == max_length),
        }
        (partial / META).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    return CalibrationSet(out, meta)


def load_calibration(directory: Path) -> CalibrationSet:
    meta_path = directory / META
    if not meta_path.is_file() or not (directory / SAMPLES).is_file():
        raise LlmserveError(
            f"no calibration set in {str(directory)!r}: run `python quantize.py calibrate` first"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("split") != SPLIT:
        raise LlmserveError(
            f"{directory} was drawn from split {meta.get('split')!r}, not {SPLIT!r}")
    return CalibrationSet(directory, meta)
