"""Figures from repeated measurements: percentiles, median with range, mean with spread,
ratios and the length of a union of intervals. Every tool summarizes with these."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, as vLLM's benchmarks)."""
    if not values:
        raise ValueError("no values")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def percentiles(
    values: Sequence[float], qs: Sequence[int] = PERCENTILES
) -> dict[str, float | None]:
    """{"p50": ..., "p90": ..., "p99": ...}; None for each when there are no values."""
    if not values:
        return {f"p{q}": None for q in qs}
    found = np.percentile(np.asarray(values, dtype=float), list(qs))
    return {f"p{q}": float(v) for q, v in zip(qs, found, strict=True)}


@dataclass(frozen=True)
class Spread:
    """The median of repeats and their range: what every benchmark figure shows."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values to summarize")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def scaled(self, factor: float) -> Spread:
        return Spread(self.median * factor, self.min * factor, self.max * factor, self.n)

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}


def mean_spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Mean, sample standard deviation, min and max (None when a value is missing)."""
    if not values or any(v is None for v in values):
        return None
    numbers = [float(v) for v in values]  # type: ignore[arg-type]
    return {
        "mean": statistics.fmean(numbers),
        "std": statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
        "min": min(numbers),
        "max": max(numbers),
    }


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing or the reference is zero."""
    if value is None or not reference:
        return None
    return value / reference


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by the intervals, overlaps counted once."""
    total = 0.0
    end = float("-inf")
    for lo, hi in sorted(intervals):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total
