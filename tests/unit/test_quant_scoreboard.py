"""The composite score, its weights, the table and chart, and the W4A16 group-size plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llmserve.quantize.recipes import fitting_group_size, group_plan
from llmserve.quantize.scoreboard import (
    Weights,
    add_composite,
    chart,
    failures,
    ranked,
    table,
)

MB = 1024 * 1024


def row(name: str, accuracy: float, mb: float, ttft: float, tpot: float) -> dict[str, Any]:
    return {"name": name, "status": "ok", "rouge_cjk": accuracy, "weight_bytes": mb * MB,
            "ttft_s": ttft, "tpot_s": tpot, "tokens_per_s": 1 / tpot, "method": "m",
            "scheme": "s", "reason": None}


def test_composite_normalizes_each_metric_to_the_best_and_weights_them() -> None:
    rows = [
        row("original", accuracy=0.40, mb=200, ttft=0.10, tpot=0.020),
        row("small", accuracy=0.20, mb=50, ttft=0.05, tpot=0.010),
        {"name": "broken", "status": "failed", "reason": "missing config.json"},
    ]
    add_composite(rows, Weights(accuracy=0.4, compression=0.2, ttft=0.2, tpot=0.2),
                  "rouge_cjk")
    original, small, broken = rows
    assert original["normalized"] == pytest.approx(
        {"accuracy": 1.0, "compression": 0.25, "ttft": 0.5, "tpot": 0.5})
    assert small["normalized"] == pytest.approx(
        {"accuracy": 0.5, "compression": 1.0, "ttft": 1.0, "tpot": 1.0})
    assert original["composite"] == pytest.approx(0.4 * 1 + 0.2 * 0.25 + 0.2 * 0.5 + 0.2 * 0.5)
    assert small["composite"] == pytest.approx(0.4 * 0.5 + 0.2 + 0.2 + 0.2)
    assert small["ratios"] == pytest.approx(
        {"compression": 4.0, "ttft_speedup": 2.0, "tpot_speedup": 2.0})
    assert broken["composite"] is None
    assert [r["name"] for r in ranked(rows)] == ["small", "original", "broken"]


def test_weights_are_relative_and_a_missing_metric_counts_zero() -> None:
    rows = [row("original", 0.4, 200, 0.1, 0.02), row("fast", 0.4, 200, 0.1, 0.01)]
    rows[1]["ttft_s"] = None
    add_composite(rows, Weights(accuracy=0, compression=0, ttft=1, tpot=1), "rouge_cjk")
    assert rows[0]["composite"] == pytest.approx((1.0 + 0.5) / 2)
    assert rows[1]["composite"] == pytest.approx((0.0 + 1.0) / 2)
    # Doubling every weight changes nothing.
    add_composite(rows, Weights(accuracy=0, compression=0, ttft=2, tpot=2), "rouge_cjk")
    assert rows[0]["composite"] == pytest.approx(0.75)


def test_weights_parse_names_the_bad_part() -> None:
    assert Weights.parse("accuracy=1,ttft=0") == Weights(accuracy=1, compression=0.2, ttft=0,
                                                         tpot=0.2)
    with pytest.raises(ValueError, match="'speed=1'"):
        Weights.parse("speed=1")
    with pytest.raises(ValueError, match="must be 0 or more"):
        Weights.parse("accuracy=-1")
    with pytest.raises(ValueError, match="sum to 0"):
        Weights.parse("accuracy=0,compression=0,ttft=0,tpot=0")
    with pytest.raises(ValueError, match="unknown accuracy metric"):
        add_composite([], Weights(), "bleu")


def test_table_shows_failed_reason_and_chart_is_written(tmp_path: Path) -> None:
    rows = [row("original", 0.4, 200, 0.1, 0.02),
            {"name": "broken", "status": "failed", "reason": "unknown quantization method 'x'"}]
    add_composite(rows, Weights(), "rouge_cjk")
    console = Console(record=True, width=250)
    console.print(table(rows, "rouge_cjk"))
    text = console.export_text()
    assert "FAILED" in text
    assert failures(rows) == ["broken: FAILED: unknown quantization method 'x'"]
    assert "original" in text
    chart(rows, "rouge_cjk", tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_group_plan_for_smollm2_sizes() -> None:
    """SmolLM2-135M: hidden 576 (128 does not divide it), intermediate 1536 (it does)."""
    assert fitting_group_size(1536, 128) == 128
    assert fitting_group_size(576, 128) == 64
    assert fitting_group_size(100, 128) is None  # no power of two >= 32 divides 100
    features = {"layers.0.self_attn.q_proj": 576, "layers.0.mlp.down_proj": 1536,
                "layers.0.mlp.up_proj": 576, "odd.proj": 100}
    plan = group_plan(features, 128)
    assert plan.groups == {64: ["layers.0.self_attn.q_proj", "layers.0.mlp.up_proj"],
                           128: ["layers.0.mlp.down_proj"]}
    assert plan.ignored == ["odd.proj"]
    assert any("576 % 128 = 64" in note and "q_proj, up_proj" in note for note in plan.notes)
    assert any("left unquantized" in note for note in plan.notes)
