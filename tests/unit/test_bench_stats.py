"""The benchmark's statistics: throughput and latency figures, and the shared spreads,
percentiles and ratios (llmserve.harness.stats) as the benchmark relies on them."""

from __future__ import annotations

import pytest

from llmserve.bench.stats import (
    LatencyRun,
    ThroughputRun,
    summarize_latency,
    summarize_throughput,
)
from llmserve.harness.stats import Spread, percentile, ratio


def test_spread_is_median_with_range() -> None:
    spread = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (spread.median, spread.min, spread.max, spread.n) == (2.5, 1.0, 10.0, 4)
    assert Spread.of([5.0]).to_json() == {"median": 5.0, "min": 5.0, "max": 5.0, "n": 1}


def test_spread_scaled_and_empty() -> None:
    assert Spread.of([1.0, 2.0, 3.0]).scaled(1000).median == 2000
    with pytest.raises(ValueError):
        Spread.of([])


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0


def test_throughput_run_and_summary() -> None:
    runs = [ThroughputRun(2.0, 200, 4), ThroughputRun(1.0, 200, 4), ThroughputRun(4.0, 200, 4)]
    assert [r.tokens_per_s for r in runs] == [100.0, 200.0, 50.0]
    summary = summarize_throughput(runs)
    assert summary["tokens_per_s"] == {"median": 100.0, "min": 50.0, "max": 200.0, "n": 3}
    assert summary["seconds"]["median"] == 2.0
    assert len(summary["runs"]) == 3
    assert ThroughputRun(0.0, 10, 1).tokens_per_s == 0.0
    assert summary["cpu_ms_per_token"] is None  # no CPU figures were taken


def test_cpu_cost_per_token() -> None:
    runs = [ThroughputRun(1.0, 200, 4, cpu_seconds=c) for c in (0.4, 0.2, 0.3)]
    assert runs[0].cpu_ms_per_token == pytest.approx(2.0)
    assert summarize_throughput(runs)["cpu_ms_per_token"]["median"] == pytest.approx(1.5)


def test_tpot_is_per_sequence_after_the_first_token() -> None:
    # A batch of 2 generating 11 tokens each: 10 decode steps after the first token.
    run = LatencyRun(e2e_s=1.1, ttft_s=0.1, output_tokens=22, batch_size=2)
    assert run.tpot_s == pytest.approx(0.1)
    assert LatencyRun(0.5, 0.5, 1, 1).tpot_s == 0.0  # one token: no decode step
    assert LatencyRun(0.1, 0.2, 5, 1).tpot_s == 0.0  # TTFT above e2e (noise) never negative


def test_latency_summary_in_milliseconds() -> None:
    runs = [LatencyRun(1.0 + i / 10, 0.1, 11, 1) for i in range(5)]
    summary = summarize_latency(runs)
    assert summary["ttft_ms"]["median"] == pytest.approx(100.0)
    assert summary["e2e_ms"]["p50"] == pytest.approx(1200.0)
    assert summary["e2e_ms"]["min"] == pytest.approx(1000.0)
    assert summary["e2e_ms"]["p99"] == pytest.approx(1396.0)
    assert summary["tpot_ms"]["median"] == pytest.approx(110.0)


def test_ratio_handles_missing_values() -> None:
    assert ratio(90.0, 100.0) == pytest.approx(0.9)
    assert ratio(None, 100.0) is None
    assert ratio(90.0, None) is None
    assert ratio(90.0, 0.0) is None
