"""The shared statistics: percentiles, median spread, mean spread, ratio, interval union."""

from __future__ import annotations

import pytest

from llmserve.harness.stats import Spread, mean_spread, percentile, percentiles, ratio, union_length


def test_percentiles_interpolate_linearly() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentiles(values) == {
        "p50": 2.5, "p90": pytest.approx(3.7), "p99": pytest.approx(3.97)}
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    with pytest.raises(ValueError):
        percentile([], 50)


def test_spread_is_median_and_range() -> None:
    spread = Spread.of([3.0, 1.0, 10.0])
    assert (spread.median, spread.min, spread.max, spread.n) == (3.0, 1.0, 10.0, 3)
    assert spread.scaled(10).to_json() == {"median": 30.0, "min": 10.0, "max": 100.0, "n": 3}


def test_mean_spread_needs_every_value() -> None:
    assert mean_spread([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(1.4142, abs=1e-4),
                                       "min": 1.0, "max": 3.0}
    assert mean_spread([2.0])["std"] == 0.0  # type: ignore[index]
    assert mean_spread([1.0, None]) is None
    assert mean_spread([]) is None


def test_ratio_and_union() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, 0.0) is None
    assert union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.8)]) == 4.0
    assert union_length([]) == 0.0
