"""What a search leaves: the table, the score-vs-tokens/s plot, best_params.json and best.env.

All are rebuilt from the journal after every trial, so a long run always has its best so far;
files are replaced atomically.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llmserve.harness.charts import pyplot, save_figure
from llmserve.records import write_atomic, write_json
from llmserve.settings import Settings
from llmserve.tune.objective import Objective

Record = dict[str, Any]
TABLE = "table.txt"
PLOT = "tune_plot.png"
BEST_JSON = "best_params.json"
BEST_ENV = "best.env"
# Short names for the table; other settings show their own name.
SHORT = {
    "MAX_NUM_SEQS": "seqs", "MAX_NUM_BATCHED_TOKENS": "batched",
    "ENABLE_PREFIX_CACHING": "prefix", "SPECULATIVE_METHOD": "spec",
    "NUM_SPECULATIVE_TOKENS": "spec_k", "NGRAM_PROMPT_LOOKUP_MAX": "ngram_max",
    "NGRAM_PROMPT_LOOKUP_MIN": "ngram_min", "MAX_NEW_TOKENS": "new",
    "REPETITION_PENALTY": "rep", "MODEL_DIR": "model",
}
NOT_IN_ENV = {"HOST", "PORT"}  # best.env leaves where to serve to the user


def describe(params: dict[str, str]) -> str:
    if not params:
        return "(defaults)"
    parts = []
    for name, value in params.items():
        shown = Path(value).name if name in ("MODEL_DIR", "SPECULATIVE_DRAFT_MODEL") else value
        parts.append(f"{SHORT.get(name, name)}={shown}")
    return " ".join(parts)


def _fmt(value: dict[str, float] | None, digits: int) -> str:
    if value is None:
        return "-"
    text = f"{value['mean']:.{digits}f}"
    return text + (f"±{value['std']:.{digits}f}" if value["std"] else "")


def role(record: Record, objective: Objective, best: Record | None,
         front: list[Record]) -> str:
    tags = []
    if record.get("default"):
        tags.append("default")
    if best is not None and record["key"] == best["key"]:
        tags.append("BEST")
    if any(r["key"] == record["key"] for r in front):
        tags.append("front")
    if objective.measured(record) and not objective.feasible(record):
        tags.append("below floor")
    return ", ".join(tags)


def table(records: list[Record], objective: Objective) -> Table:
    best = objective.best(records)
    front = objective.pareto(records)
    default = next((r for r in records if r.get("default")), None)
    base_tps = objective.tps(default) if default and objective.measured(default) else None
    other = "wall" if objective.basis == "engine" else "engine"
    floor = "none" if objective.floor is None else f"{objective.floor:.4f}"
    result = Table(title=f"auto_tune: max tokens/s ({objective.basis}) with {objective.scorer} "
                   f"score >= {floor}", title_justify="left")
    for name in ("#", "key", "status", "settings", f"score {objective.scorer}",
                 f"tok/s {objective.basis}", "x default", f"tok/s {other}", "note"):
        result.add_column(name, overflow="fold")
    for record in records:
        tps = objective.tps(record) if objective.measured(record) else None
        ratio = f"{tps / base_tps:.2f}" if tps and base_tps else "-"
        note = role(record, objective, best, front) if record["status"] == "ok" else (
            f"{'default; ' if record.get('default') else ''}{record.get('reason') or ''}")
        result.add_row(
            str(record["number"]), record["key"][:8], record["status"],
            describe(record["params"]),
            _fmt((record.get("score") or {}).get(objective.scorer), 4),
            _fmt((record.get("tps") or {}).get(objective.basis), 1), ratio,
            _fmt((record.get("tps") or {}).get(other), 1), note[:160])
    return result


def render_table(records: list[Record], objective: Objective, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(table(records, objective))
    return console.export_text()


def plot(records: list[Record], objective: Objective, path: Path) -> None:
    """Score against tokens/s: every measured trial with its spread, the floor, the front."""
    points = [r for r in records if objective.measured(r)]
    fig, ax = pyplot().subplots(figsize=(8, 5.5))
    best = objective.best(records)
    for r in points:
        x, y = objective.tps(r), objective.score(r)
        ok = objective.feasible(r)
        ax.errorbar(x, y, xerr=r["tps"][objective.basis]["std"],
                    yerr=r["score"][objective.scorer]["std"], fmt="o",
                    color="tab:blue" if ok else "tab:gray", alpha=0.8, capsize=2)
        ax.annotate(str(r["number"]), (x, y), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    front = objective.pareto(records)
    if front:
        ax.plot([objective.tps(r) for r in front], [objective.score(r) for r in front],
                "-", marker="D", markersize=10, markerfacecolor="none", color="tab:orange",
                label="Pareto front")
    if objective.floor is not None:
        ax.axhline(objective.floor, color="tab:red", linestyle="--",
                   label=f"floor {objective.floor:.4f}")
    default = next((r for r in points if r.get("default")), None)
    if default is not None:
        ax.scatter([objective.tps(default)], [objective.score(default)], s=160,
                   facecolors="none", edgecolors="black", label="default settings")
    if best is not None:
        ax.scatter([objective.tps(best)], [objective.score(best)], marker="*", s=260,
                   color="tab:green", zorder=5, label="best")
    ax.set_xlabel(f"output tokens/s ({objective.basis})")
    ax.set_ylabel(f"RougeL-F1 ({objective.scorer}), mean over repeats")
    ax.set_title("auto_tune: score vs throughput (numbers: trial #)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)


def _figures(record: Record | None, objective: Objective) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "number": record["number"], "key": record["key"], "status": record["status"],
        "params": record["params"], "settings": record["settings"],
        "score": objective.score(record) if objective.measured(record) else None,
        "tokens_per_s": objective.tps(record) if objective.measured(record) else None,
        "detail": {"score": record.get("score"), "tps": record.get("tps")},
        "test": record.get("test"),
    }


def env_file(best: Record, header: list[str], path: Path) -> str:
    """`source`-able: the trial's settings exported, every other setting unset (its default),
    so the shell serves exactly what was measured."""
    lines = [f"# {line}" for line in header]
    lines.append(f"# Use from the repository root:  source {path} && bash run_model.sh   "
                 "(or: JUDGE_START=1 bash judge.sh)")
    settings = best["settings"]
    for name, value in settings.items():
        lines.append(f"export {name}={shlex.quote(value)}")
    unset = [n.upper() for n in Settings.model_fields
             if n.upper() not in settings and n.upper() not in NOT_IN_ENV]
    lines.append(f"unset {' '.join(unset)}")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, records: list[Record], objective: Objective,
                  meta: dict[str, Any]) -> Record | None:
    """Table, plot, best_params.json and best.env (removed when no trial reached the floor)."""
    best = objective.best(records)
    default = next((r for r in records if r.get("default")), None)
    write_atomic(out / TABLE, render_table(records, objective))
    plot(records, objective, out / PLOT)
    summary = {
        "objective": f"max mean tokens/s ({objective.basis}) over trials whose mean "
                     f"{objective.scorer} score >= floor",
        "scorer": objective.scorer, "tps_basis": objective.basis,
        "floor": objective.floor, "floor_source": objective.floor_source,
        "measure": meta,
        "trials": {s: sum(1 for r in records if r["status"] == s)
                   for s in ("ok", "failed", "timeout")},
        "best": _figures(best, objective),
        "default": _figures(default, objective),
        "speedup_vs_default": (objective.tps(best) / objective.tps(default)  # type: ignore[operator]
                               if best and default and objective.measured(default) else None),
    }
    write_json(out / BEST_JSON, summary)
    env_path = out / BEST_ENV
    if best is None:
        env_path.unlink(missing_ok=True)  # never leave a stale best to be sourced
        return None
    header = [f"auto_tune best: trial #{best['number']} ({best['key']}): "
              f"{describe(best['params'])}",
              f"tune split: {objective.scorer} {objective.score(best):.4f} at "
              f"{objective.tps(best):.1f} tokens/s ({objective.basis})"]
    if default is not None and objective.measured(default):
        header.append(f"default settings: {objective.scorer} {objective.score(default):.4f} at "
                      f"{objective.tps(default):.1f} tokens/s")
    write_atomic(env_path, env_file(best, header, env_path))
    return best
