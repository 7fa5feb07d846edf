"""The scoreboard: composite score, table and chart of the compared variants.

Composite (competition style): four metrics, each higher-is-better and normalized to the
best successful variant (best = 1.0), combined with weights that sum to anything (they are
divided by their total):
  accuracy     the chosen accuracy metric (default: the judge's default RougeL scorer)
  compression  weight bytes of the original / of the variant
  ttft         TTFT of the original / of the variant (speed-up)
  tpot         TPOT of the original / of the variant (speed-up)
Normalizing a ratio to the best is the same as normalizing its inverse (best size / size),
so the composite does not depend on the original being in the run; the ratios shown do.
A metric a variant lacks counts 0. Failed variants get no composite and rank last.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from llmserve.harness.charts import pyplot, save_figure

ACCURACY_METRICS = ("rouge_cjk", "rouge_compat", "gsm8k_strict", "gsm8k_flexible")
BASELINE = "original"
MB = 1024 * 1024


@dataclass(frozen=True)
class Weights:
    accuracy: float = 0.4
    compression: float = 0.2
    ttft: float = 0.2
    tpot: float = 0.2

    @classmethod
    def parse(cls, text: str) -> Weights:
        """`accuracy=0.5,ttft=0.25`: named weights; the ones not named keep their default."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep or name.strip() not in known:
                raise ValueError(f"bad weight {part!r}: use NAME=NUMBER with NAME one of "
                                 f"{', '.join(sorted(known))}")
            number = float(value)
            if number < 0 or math.isnan(number):
                raise ValueError(f"weight {name.strip()} must be 0 or more, got {value!r}")
            values[name.strip()] = number
        weights = cls(**{**asdict(cls()), **values})
        if sum(asdict(weights).values()) <= 0:
            raise ValueError(f"weights {text!r} sum to 0")
        return weights


def _inverse(value: float | None) -> float | None:
    return 1.0 / value if value else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def add_composite(rows: list[dict[str, Any]], weights: Weights, accuracy_metric: str) -> None:
    """Fill each row's `ratios`, `normalized` and `composite` in place."""
    if accuracy_metric not in ACCURACY_METRICS:
        raise ValueError(f"unknown accuracy metric {accuracy_metric!r}; known: "
                         f"{', '.join(ACCURACY_METRICS)}")
    ok = [row for row in rows if row.get("status") == "ok"]
    base = next((row for row in ok if row["name"] == BASELINE), None)
    raw = {
        id(row): {
            "accuracy": row.get(accuracy_metric),
            "compression": _inverse(row.get("weight_bytes")),
            "ttft": _inverse(row.get("ttft_s")),
            "tpot": _inverse(row.get("tpot_s")),
        }
        for row in ok
    }
    best = {
        key: max((values[key] for values in raw.values() if values[key] is not None),
                 default=None)
        for key in ("accuracy", "compression", "ttft", "tpot")
    }
    total = sum(asdict(weights).values())
    for row in rows:
        if row.get("status") != "ok":
            row.update(ratios=None, normalized=None, composite=None)
            continue
        values = raw[id(row)]
        normalized = {key: (value / best[key] if value is not None and best[key] else 0.0)
                      for key, value in values.items()}
        row["normalized"] = normalized
        row["composite"] = sum(getattr(weights, key) * normalized[key]
                               for key in normalized) / total
        row["ratios"] = None if base is None else {
            "compression": _ratio(base.get("weight_bytes"), row.get("weight_bytes")),
            "ttft_speedup": _ratio(base.get("ttft_s"), row.get("ttft_s")),
            "tpot_speedup": _ratio(base.get("tpot_s"), row.get("tpot_s")),
        }


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best composite first; failed rows last, in their original order."""
    return sorted(rows, key=lambda row: (row.get("composite") is None,
                                         -(row.get("composite") or 0.0)))


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def table(rows: list[dict[str, Any]], accuracy_metric: str) -> Any:
    """A rich Table of the ranked rows."""
    from rich.table import Table

    out = Table(title=f"quantization scoreboard (composite accuracy = {accuracy_metric})")
    for header in ("#", "variant", "status", "method / scheme", "RougeL cjk", "RougeL compat",
                   "GSM8K strict", "GSM8K flex", "TTFT ms", "TPOT ms", "tok/s",
                   "weights MB", "engine GiB", "x smaller", "composite"):
        out.add_column(header, justify="left" if header in ("variant", "status",
                                                            "method / scheme") else "right")
    for place, row in enumerate(ranked(rows), 1):
        how = f"{row.get('method') or '-'} / {row.get('scheme') or '-'}"
        if row.get("status") != "ok":
            out.add_row("-", row["name"], "[red]FAILED[/red]", how, *(["-"] * 11))
            continue
        ratios = row.get("ratios") or {}
        out.add_row(
            str(place), row["name"], "ok", how,
            _fmt(row.get("rouge_cjk"), ".4f"), _fmt(row.get("rouge_compat"), ".4f"),
            _fmt(row.get("gsm8k_strict"), ".3f"), _fmt(row.get("gsm8k_flexible"), ".3f"),
            _fmt(row.get("ttft_s"), ".1f", 1e3), _fmt(row.get("tpot_s"), ".2f", 1e3),
            _fmt(row.get("tokens_per_s"), ".1f"),
            _fmt(row.get("weight_bytes"), ".1f", 1 / MB), _fmt(row.get("engine_mem_gib"), ".3f"),
            _fmt(ratios.get("compression"), ".2f"), _fmt(row.get("composite"), ".3f"),
        )
    return out


def failures(rows: list[dict[str, Any]]) -> list[str]:
    """One line per failed row: the reasons do not fit in a table cell."""
    return [f"{row['name']}: FAILED: {row.get('reason') or 'unknown reason'}"
            for row in rows if row.get("status") != "ok"]


def chart(rows: list[dict[str, Any]], accuracy_metric: str, path: Path) -> None:
    """Accuracy against tokens/s; marker area proportional to weight size."""
    points = [r for r in rows if r.get("status") == "ok" and r.get("tokens_per_s") is not None
              and r.get(accuracy_metric) is not None]
    fig, ax = pyplot().subplots(figsize=(8, 5.5))
    largest = max((r.get("weight_bytes") or 0 for r in points), default=0) or 1
    for row in points:
        size = 1500 * (row.get("weight_bytes") or 0) / largest
        ax.scatter(row["tokens_per_s"], row[accuracy_metric], s=max(size, 30), alpha=0.5)
        label = f"{row['name']}\n{(row.get('weight_bytes') or 0) / MB:.0f} MB"
        ax.annotate(label, (row["tokens_per_s"], row[accuracy_metric]),
                    textcoords="offset points", xytext=(0, 12), ha="center", fontsize=8)
    failed = [r["name"] for r in rows if r.get("status") != "ok"]
    ax.set_xlabel("throughput, output tokens/s (/predict list request)")
    ax.set_ylabel(accuracy_metric)
    title = "accuracy vs throughput (marker area = weight size)"
    if failed:
        title += f"\nfailed: {', '.join(failed)}"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(0.2)
    save_figure(fig, path)
