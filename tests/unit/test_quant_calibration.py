"""Calibration samples come from the tune split only, templated, truncated and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmserve.errors import LlmserveError
from llmserve.model import embedded_dir
from llmserve.quantize.calibration import load_calibration, make_calibration
from llmserve.settings import Settings

EMBEDDED = embedded_dir(Settings().cache_dir)


def write_data(path: Path, splits: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as file:
        for n, split in enumerate(splits):
            messages = [{"role": "user", "content": f"Question number {n}? " * 5},
                        {"role": "assistant", "content": f"Answer number {n}. " * 40}]
            file.write(json.dumps({"id": f"q{n}", "split": split, "messages": messages}) + "\n")
    return path


def test_samples_come_from_the_tune_split_only(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data.jsonl", ["test", "tune", "test", "tune", "tune", "test"])
    made = make_calibration(data, EMBEDDED, tmp_path / "cal", count=3, max_length=64, seed=1)
    lines = [json.loads(line) for line in made.samples.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["q1", "q3", "q4"]
    assert all(len(line["input_ids"]) == 64 for line in lines)  # long answers: truncated
    assert "<|im_start|>assistant" in lines[0]["text"]  # the chat template, answer included
    meta = load_calibration(tmp_path / "cal").meta
    assert meta["split"] == "tune" and meta["count"] == 3 and meta["seed"] == 1
    assert meta["truncated"] == 3 and sorted(meta["ids"]) == ["q1", "q3", "q4"]
    again = make_calibration(data, EMBEDDED, tmp_path / "cal2", count=2, max_length=64, seed=1)
    assert again.meta["ids"] == make_calibration(
        data, EMBEDDED, tmp_path / "cal3", count=2, max_length=64, seed=1).meta["ids"]


def test_bad_requests_are_named(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data.jsonl", ["test", "tune"])
    with pytest.raises(LlmserveError, match="--count 5 is more than the 1 tune items"):
        make_calibration(data, EMBEDDED, tmp_path / "cal", count=5, max_length=64, seed=0)
    only_test = write_data(tmp_path / "test-only.jsonl", ["test", "test"])
    with pytest.raises(LlmserveError, match="no items in split 'tune'"):
        make_calibration(only_test, EMBEDDED, tmp_path / "cal", count=1, max_length=64, seed=0)
    with pytest.raises(LlmserveError, match="no calibration set"):
        load_calibration(tmp_path / "absent")
