"""`llmserve budget`: points, resume, table and chart (a scripted measure), flag errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmserve.budget.sweep import Point, points, report, run_sweep
from llmserve.cli import main as cli_main


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
