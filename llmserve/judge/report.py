"""The table printed at the end of a run (rich), from the summary alone."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(stderr=False)
    results = summary["results"]
    run = summary["run"]
    scores = results["scores"]
    main = summary["scorer"]

    table = Table(title=escape(f"judge: {run['mode']} on {run['data']} [{run['split']}]"),
                  show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note")
    for name in ("cjk", "compat"):
        note = "gated scorer" if name == main else ""
        if name == "compat" and results["compat_blind_items"]:
            note = escape(f"{results['compat_blind_items']} of {results['items']} references "
                          "have no [a-z0-9] token: scored 0 whatever the answer")
        table.add_row(f"RougeL-F1 {name}", _num(scores[name], 4), note)
    table.add_row("items / requests", f"{results['items']} / {results['requests']}",
                  f"{results['sessions']} session(s)")
    table.add_row("output tokens", str(results["output_tokens"]),
                  f"engine counted {results['engine_output_tokens']}")
    table.add_row("tokens/s (wall)", _num(results["tokens_per_s_wall"]),
                  f"over {_num(results['wall_seconds'])} s")
    table.add_row("tokens/s (engine)", _num(results["tokens_per_s_engine"]),
                  f"over {_num(results['engine_seconds'])} s engine time (union)"
                  if results["engine_seconds"] is not None else "server sent no X-Engine-Seconds")
    latency = results["latency_s"]
    table.add_row("latency p50/p90/p99 s",
                  " / ".join(_num(latency[k]) for k in ("p50", "p90", "p99")),
                  "per request" + (" (a whole batch each)" if "batch" in run["mode"] else ""))
    for gate in summary["gates"]:
        verdict = "[green]pass[/green]" if gate["passed"] else "[bold red]FAIL[/bold red]"
        table.add_row(escape(f"gate {gate['name']}"), _num(gate["value"], 4),
                      f"{verdict} (min {gate['threshold']:g})")
    console.print(table)
