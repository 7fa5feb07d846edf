"""A PNG comparing the systems: throughput bars (min–max whiskers, ratio to vllm-offline
on top) and latency bars (TTFT and TPOT), drawn from the record alone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmserve.bench.config import REFERENCE
from llmserve.harness.charts import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _errors(entries: list[dict[str, Any]]) -> list[list[float]]:
    return [[e["median"] - e["min"] for e in entries], [e["max"] - e["median"] for e in entries]]


def _throughput(ax: Axes, data: dict[str, Any]) -> None:
    rows = list(data["throughput"])
    entries = [data["throughput"][r]["tokens_per_s"] for r in rows]
    colors = ["tab:gray" if r == REFERENCE else "tab:blue" for r in rows]
    bars = ax.bar(rows, [e["median"] for e in entries], yerr=_errors(entries), capsize=4,
                  color=colors)
    for bar, row in zip(bars, rows, strict=True):
        value = data["ratios"].get(row)
        if value is not None:
            ax.annotate(f"{value:.2f}×", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", xytext=(0, 6), textcoords="offset points")
    work = data.get("workload", {}).get("throughput", {})
    ax.set_title(f"Throughput: {work.get('num_prompts')} prompts, "
                 f"C={work.get('concurrency')} (× {REFERENCE})")
    ax.set_ylabel("output tokens/s (median, min–max)")
    ax.tick_params(axis="x", labelrotation=20)
    ax.margins(y=0.15)


def _latency(ax: Axes, data: dict[str, Any]) -> None:
    from matplotlib.ticker import ScalarFormatter

    names = list(data["latency"])
    width = 0.38
    positions = range(len(names))
    for offset, key, label in ((-width / 2, "ttft_ms", "TTFT"), (width / 2, "tpot_ms", "TPOT")):
        entries = [data["latency"][n][key] for n in names]
        ax.bar([p + offset for p in positions], [e["median"] for e in entries], width,
               yerr=_errors(entries), capsize=3, label=label)
    ax.set_xticks(list(positions), names, rotation=20)
    ax.set_yscale("log")  # TTFT and TPOT differ by an order of magnitude or more
    ax.yaxis.set_major_formatter(ScalarFormatter())  # plain milliseconds, not 10^x
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    work = data.get("workload", {}).get("latency", {})
    ax.set_title(f"Latency: batch {work.get('batch_size')}, {work.get('input_len')} in, "
                 f"{work.get('output_len')} out")
    ax.set_ylabel("ms (median, min–max; log scale)")
    ax.legend()


def draw(data: dict[str, Any], path: Path) -> Path | None:
    """Write the chart; None when the record has no figures yet."""
    panels = [p for p, key in ((_throughput, "throughput"), (_latency, "latency")) if data[key]]
    if not panels:
        return None
    fig, axes = pyplot().subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    for panel, ax in zip(panels, axes[0], strict=True):
        panel(ax, data)
    hw = data.get("hardware", {})
    device = ", ".join(hw.get("gpus") or []) or f"{hw.get('cpu')} × {hw.get('usable_cpus')}"
    fig.suptitle(f"llmserve benchmark — {device}", fontsize=10)
    save_figure(fig, path, dpi=110)
    return path
