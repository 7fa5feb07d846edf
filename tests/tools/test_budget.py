"""`llmserve budget`: points, resume, table and chart (a scripted measure), flag errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmserve.budget.sweep import Point, points, report, run_sweep
from llmserve.cli import main as cli_main
from llmserve.records import read_jsonl


def scripted(calls: list[str]) -> Any:
    def measure(point: Point, run_dir: Path) -> dict[str, Any]:
        calls.append(point.key)
        acc = min(1.0, point.budget / 256) * (0.9 if point.hint else 0.8)
        return {
            "gsm8k_strict": acc / 2,
            "gsm8k_flexible": acc,
            "n": 4,
            "seconds_per_problem": point.budget / 100,
        }

    return measure


def test_sweep_resumes_and_reports(tmp_path: Path) -> None:
    todo = points(["vllm", "llamacpp"], [32, 64], [False, True])
    assert len(todo) == 8 and len({p.key for p in todo}) == 8
    calls: list[str] = []
    run_sweep(todo[:3], tmp_path, scripted(calls))
    records = run_sweep(todo, tmp_path, scripted(calls))
    assert calls == [p.key for p in todo]  # the first three were not measured twice
    assert len(records) == 8
    report(records, tmp_path)
    text = (tmp_path / "budget.md").read_text()
    assert "| llamacpp | 64 | on | 0.225 |" in text
    assert (tmp_path / "budget.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--budgets", "32,abc", "budgets must be integers"),
        ("--budgets", "0", "positive"),
        ("--engines", "vllm,tgi", "unknown engine 'tgi'"),
    ],
)
def test_bad_flags_are_usage_errors(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["budget", flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.engine
def test_one_real_point_on_llamacpp(tmp_path: Path) -> None:
    """A real server per point (llama.cpp starts in seconds): GSM8K and the judge scored, the
    budget held in what the judge counted."""
    pytest.importorskip("llama_cpp")
    code = cli_main([
        "budget", "--engines", "llamacpp", "--budgets", "16", "--hints", "on",
        "--limit", "2", "--judge-limit", "3", "--batch-size", "3", "--out", str(tmp_path),
    ])
    assert code == 0
    (record,) = read_jsonl(tmp_path / "records.jsonl")
    assert record["key"] == "llamacpp/16/hint" and record["n"] == 2
    assert record["judge_items"] == 3 and 0 <= record["rouge_cjk"] <= 1
    assert 0 < record["judge_output_tokens"] <= 3 * 16  # MAX_NEW_TOKENS was the budget
    assert "| llamacpp | 16 | on |" in (tmp_path / "budget.md").read_text()
