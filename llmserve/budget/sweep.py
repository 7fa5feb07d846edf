"""The budget sweep: one server per (engine, budget, hint), GSM8K accuracy, the judge's
RougeL on data.jsonl's test split, and seconds.

Each point starts `llmserve serve` with ENGINE, MAX_NEW_TOKENS=budget and BUDGET_HINT, scores
GSM8K (llmserve.quantize.compare.run_gsm8k, the scoreboard's scorer), runs the judge (its
Runner, batched, as the scoreboard does) and appends one JSONL record; a rerun skips the
points already recorded. `table` and `chart` render the records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.records import append_jsonl, read_jsonl, write_atomic


@dataclass(frozen=True)
class Point:
    """One sweep point: which engine, how many new tokens at most, with the hint or not."""

    engine: str
    budget: int
    hint: bool

    @property
    def key(self) -> str:
        return f"{self.engine}/{self.budget}/{'hint' if self.hint else 'plain'}"


Measure = Callable[[Point, Path], dict[str, Any]]


def points(engines: list[str], budgets: list[int], hints: list[bool]) -> list[Point]:
    return [Point(e, b, h) for e in engines for b in budgets for h in hints]


@dataclass(frozen=True)
class Workload:
    """What each point is scored on."""

    gsm8k: Path
    limit: int  # GSM8K problems
    batch_size: int  # prompts per /predict list
    data: Path  # the judge's data: its test split
    judge_limit: int | None  # test questions (None: all; 0: no judge)


def measure_point(work: Workload) -> Measure:
    """A Measure that serves the point, scores GSM8K and runs the judge on it."""

    def measure(point: Point, run_dir: Path) -> dict[str, Any]:
        from llmserve.harness.launch import start_service
        from llmserve.judge.runner import score_test_split
        from llmserve.quantize.compare import run_gsm8k

        settings = {
            "ENGINE": point.engine,
            "MAX_NEW_TOKENS": point.budget,
            "BUDGET_HINT": point.hint,
        }
        name = point.key.replace("/", "-")
        judged: dict[str, Any] = {}
        with start_service(settings, log_path=run_dir / f"{name}.log") as service:
            started = time.perf_counter()
            result = run_gsm8k(service.url, work.gsm8k, run_dir / f"{name}.gsm8k.jsonl",
                               shots=0, limit=work.limit, batch_size=work.batch_size)
            seconds = time.perf_counter() - started
            if work.judge_limit != 0:
                judged = score_test_split(
                    service.url, work.data, run_dir / "judge" / name, work.judge_limit,
                    work.batch_size,
                )
        return {
            "gsm8k_strict": result["strict"],
            "gsm8k_flexible": result["flexible"],
            "n": result["n"],
            "seconds_per_problem": seconds / max(result["n"], 1),
            **judged,
        }

    return measure


def run_sweep(todo: list[Point], out: Path, measure: Measure) -> list[dict[str, Any]]:
    """Measure every point not yet in `out`/records.jsonl; returns all records."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "records.jsonl"
    done = {r["key"] for r in read_jsonl(path, repair=True)} if path.exists() else set()
    for point in todo:
        if point.key in done:
            continue
        result = measure(point, out)
        append_jsonl(
            path,
            {
                "key": point.key,
                "engine": point.engine,
                "budget": point.budget,
                "hint": point.hint,
                **result,
            },
        )
    return read_jsonl(path)


def table(records: list[dict[str, Any]]) -> str:
    """A markdown table, one row per point."""
    lines = [
        "| engine | budget | hint | GSM8K flexible | GSM8K strict | s/problem | n "
        "| judge cjk | judge compat | judge n |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def score(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:.4f}" if key in r else "–"

    for r in sorted(records, key=lambda r: (r["engine"], r["hint"], r["budget"])):
        lines.append(
            f"| {r['engine']} | {r['budget']} | {'on' if r['hint'] else 'off'} | "
            f"{r['gsm8k_flexible']:.3f} | {r['gsm8k_strict']:.3f} | "
            f"{r['seconds_per_problem']:.2f} | {r['n']} | {score(r, 'rouge_cjk')} | "
            f"{score(r, 'rouge_compat')} | {r.get('judge_items', '–')} |"
        )
    return "\n".join(lines) + "\n"


def chart(records: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against seconds per problem, one line per (engine, hint), budgets annotated."""
    from llmserve.harness.charts import pyplot, save_figure

    plt = pyplot()
    judged = any("rouge_cjk" in r for r in records)
    fig, axes = plt.subplots(1, 2 if judged else 1, figsize=(13 if judged else 7, 4.5),
                             squeeze=False)
    panels = [("gsm8k_flexible", "GSM8K accuracy (flexible)")]
    if judged:
        panels.append(("rouge_cjk", "judge RougeL-F1 (cjk), data.jsonl test"))
    lines = sorted({(r["engine"], r["hint"]) for r in records})
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for engine, hint in lines:
            rows = sorted(
                (r for r in records if (r["engine"], r["hint"]) == (engine, hint) and key in r),
                key=lambda r: r["budget"],
            )
            xs = [r["seconds_per_problem"] for r in rows]
            ys = [r[key] for r in rows]
            ax.plot(xs, ys, marker="o", label=f"{engine}, hint {'on' if hint else 'off'}")
            for r, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(str(r["budget"]), (x, y), xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("seconds per GSM8K problem")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("Token budget (points: MAX_NEW_TOKENS): accuracy against latency")
    save_figure(fig, path)


def report(records: list[dict[str, Any]], out: Path) -> None:
    write_atomic(out / "budget.md", table(records))
    chart(records, out / "budget.png")
