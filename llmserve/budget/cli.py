"""`llmserve budget`: GSM8K accuracy against latency per token budget, hint and engine."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmserve import paths
from llmserve.errors import ExitCode, LlmserveError

ENGINES = ("vllm", "llamacpp")


def csv_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"budgets must be integers, got {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"budgets must be positive integers, got {text!r}")
    return values


def csv_engines(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown engine {unknown[0] if unknown else text!r}; known: {', '.join(ENGINES)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmserve budget",
        description="Serve the model once per (engine, budget, hint) with MAX_NEW_TOKENS=budget "
        "and BUDGET_HINT, score GSM8K and the judge (RougeL on data.jsonl's test split), and "
        "write records.jsonl (resumable), budget.md and budget.png (accuracy against seconds "
        "per problem).",
    )
    parser.add_argument("--budgets", type=csv_ints, default=[32, 64, 128, 256])
    parser.add_argument("--engines", type=csv_engines, default=list(ENGINES))
    parser.add_argument("--hints", choices=("both", "on", "off"), default="both")
    parser.add_argument("--limit", type=int, default=20, help="GSM8K problems per point")
    parser.add_argument("--batch-size", type=int, default=20, help="prompts per /predict list")
    parser.add_argument("--gsm8k", type=Path, default=paths.GSM8K_TEST)
    parser.add_argument("--data", type=Path, default=paths.DATA_JSONL,
                        help="the judge's data; its test split is scored (default %(default)s)")
    parser.add_argument("--judge-limit", type=int, default=40, metavar="N",
                        help="judge test questions per point (0: no judge; default %(default)s)")
    parser.add_argument("--out", type=Path, default=paths.RESULTS_ROOT / "budget")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from llmserve.budget.sweep import Workload, measure_point, points, report, run_sweep

    hints = {"both": [False, True], "on": [True], "off": [False]}[args.hints]
    try:
        records = run_sweep(
            points(args.engines, args.budgets, hints),
            args.out,
            measure_point(
                Workload(args.gsm8k, args.limit, args.batch_size, args.data, args.judge_limit)
            ),
        )
    except LlmserveError as error:
        print(f"llmserve budget: error: {error}", file=sys.stderr)
        return int(error.exit_code)
    report(records, args.out)
    print((args.out / "budget.md").read_text())
    return int(ExitCode.OK)
