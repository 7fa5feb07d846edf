"""Command line of the auto-tuner (auto_tune.py, auto_tune.sh, python -m llmserve.tune)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmserve import paths
from llmserve.argtypes import add_env, positive_int
from llmserve.errors import ExitCode, LlmserveError
from llmserve.harness.signals import run_tool
from llmserve.tune import DEFAULT_OUT, DEFAULT_SPACE

DESCRIPTION = """\
Search engine and decoding settings for the highest output tokens/s whose judge score stays
at or above a floor. Each trial starts the real server (llmserve serve, as run_model.sh does)
with one setting on 127.0.0.1 and a free port, runs the judge on the tune split --repeats
times, records mean and spread of score and tokens/s, and stops that server (its own process
group only). Trial 1 is always the default settings (plus --env), so every run reports best
against default. The best is then confirmed on the test split.

objective: max mean tokens/s (--tps engine: output tokens / X-Engine-Seconds, which leaves
  HTTP and the judge's own CPU use out; --tps wall: end to end) over trials whose mean score
  (--scorer, default cjk) is >= --floor (default: --floor-ratio x the default trial's score).

search space: a YAML or JSON file (default tune_space.yaml; see its comments): settings with
  value lists, optional `when` conditions, and fixed settings; every value is validated with
  the server's Settings class before any trial runs.

output (--out, default results/tune/):
  tune_results.jsonl  one line per finished trial (appended, flushed, fsynced)
  status.json         the current trial and phase, best so far, ETA (replaced atomically)
  best_params.json    objective, floor, best and default trials with tune and test figures
  best.env            source it: source results/tune/best.env && bash run_model.sh
  tune_plot.png       score vs tokens/s, floor, Pareto front;  table.txt  the final table
  trials/<key>/       each trial's server.log and judge runs
Rerunning the same command resumes: recorded trials are skipped, an interrupted one is redone.

exit codes: 0 a best was found, 2 bad arguments or search space (nothing ran), 5 no trial
reached the floor, 130 interrupted (rerun to resume); docs/exit-codes.md lists every code.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmserve tune", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    search = parser.add_argument_group("search")
    search.add_argument("--space", type=Path, default=DEFAULT_SPACE,
                        help="search space, .yaml/.yml/.json (default %(default)s)")
    search.add_argument("--strategy", choices=("grid", "random"), default="random",
                        help="grid: every combination in order; random: distinct random "
                        "points (default %(default)s)")
    search.add_argument("--trials", type=positive_int, metavar="N",
                        help="trials in all, the default trial included (grid: all points; "
                        "random: 12)")
    search.add_argument("--seed", type=int, default=0, help="random search seed (%(default)s)")
    add_env(search, "a setting for every trial, validated like the space "
            "(e.g. --env ENFORCE_EAGER=1 for quick starts); repeatable")
    search.add_argument("--retry-failed", action="store_true",
                        help="rerun trials recorded as failed or timed out")
    search.add_argument("--dry-run", action="store_true",
                        help="validate the space, list the planned trials, run nothing")

    judge = parser.add_argument_group("measurement (the same for every trial of an --out)")
    judge.add_argument("--data", type=Path, default=paths.DATA_JSONL,
                       help="judge data (default %(default)s)")
    judge.add_argument("--split", default="tune", help="split searched on (default %(default)s)")
    judge.add_argument("--limit", type=positive_int, metavar="N",
                       help="only the first N items of the split")
    judge.add_argument("--repeats", type=positive_int, default=1, metavar="R",
                       help="judge runs per trial (default %(default)s)")
    judge.add_argument("--mode", choices=("batch", "seq", "concurrent"), default="batch",
                       help="how the judge sends prompts: the split as lists of up to "
                       "--batch-size (the engine batches them, so MAX_NUM_SEQS matters), one "
                       "prompt at a time, or --concurrency at once (default %(default)s)")
    judge.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="prompts per request in batch mode (default: the server's limit)")
    judge.add_argument("--concurrency", type=positive_int, metavar="N",
                       help="requests in flight in concurrent mode (default 8)")
    judge.add_argument("--warmup", type=int, default=8, metavar="N",
                       help="prompts sent untimed before judging (default %(default)s; 0: none)")
    judge.add_argument("--request-timeout", type=float, default=600.0, metavar="S",
                       help="seconds one request may take (%(default)s)")

    goal = parser.add_argument_group("objective")
    goal.add_argument("--floor", type=float, metavar="F",
                      help="lowest acceptable mean score (0..1)")
    goal.add_argument("--floor-ratio", type=float, default=0.95, metavar="X",
                      help="without --floor: X times the default trial's score (%(default)s)")
    goal.add_argument("--scorer", choices=("cjk", "compat"), default="cjk",
                      help="the score the floor applies to (default %(default)s)")
    goal.add_argument("--tps", choices=("engine", "wall"), default="engine",
                      help="the tokens/s maximised (default %(default)s)")

    confirm = parser.add_argument_group("confirmation")
    confirm.add_argument("--no-confirm", action="store_true",
                         help="skip judging the best and default settings on the test split")
    confirm.add_argument("--confirm-split", default="test", help="(default %(default)s)")
    confirm.add_argument("--confirm-limit", type=positive_int, metavar="N",
                         help="only the first N items of the confirmation split")

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="(default %(default)s)")
    run.add_argument("--start-timeout", type=float, default=600.0, metavar="S",
                     help="seconds a server may take to become healthy (%(default)s)")
    run.add_argument("--trial-timeout", type=float, default=1800.0, metavar="S",
                     help="seconds a whole trial may take (%(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(
        "llmserve tune", lambda: _run(args),
        on_interrupt=lambda: f"rerun the same command to resume ({args.out})")


def _run(args: argparse.Namespace) -> int:
    # Imported after parsing so that --help is instant (the judge pulls in jieba and rouge).
    from llmserve.dataset import load_items, select
    from llmserve.tune.space import load_space
    from llmserve.tune.trial import Limits, Measure
    from llmserve.tune.tuner import TuneConfig, Tuner

    space = load_space(args.space, dict(args.env))
    if args.mode != "concurrent" and args.concurrency is not None:
        raise LlmserveError("--concurrency needs --mode concurrent")
    if args.mode != "batch" and args.batch_size is not None:
        raise LlmserveError("--batch-size needs --mode batch")
    for split in (args.split, *(() if args.no_confirm else (args.confirm_split,))):
        select(load_items(args.data), split, None)  # bad data fails now, not in trial 1
    measure = Measure(
        data=args.data, split=args.split, limit=args.limit, repeats=args.repeats,
        mode=args.mode, batch_size=args.batch_size,
        concurrency=args.concurrency or (8 if args.mode == "concurrent" else 1),
        warmup=args.warmup, request_timeout=args.request_timeout)
    config = TuneConfig(
        out=args.out, measure=measure,
        limits=Limits(start_timeout=args.start_timeout, trial_timeout=args.trial_timeout),
        strategy=args.strategy, trials=args.trials, seed=args.seed, scorer=args.scorer,
        tps_basis=args.tps, floor=args.floor, floor_ratio=args.floor_ratio,
        confirm=not args.no_confirm, confirm_split=args.confirm_split,
        confirm_limit=args.confirm_limit, retry_failed=args.retry_failed,
        progress=not args.no_progress and sys.stderr.isatty())
    tuner = Tuner(config, space)
    if args.dry_run:
        return _dry_run(tuner)
    outcome = tuner.run()
    _print_summary(outcome, args.out)
    return ExitCode.OK if outcome.best is not None else ExitCode.NO_RESULT


def _dry_run(tuner: Any) -> int:
    from llmserve.tune.report import describe

    the_plan = tuner.plan()
    for number, cand in enumerate(the_plan.candidates, 1):
        print(f"{number:4d}  {cand.key}  {describe(cand.params)}")
    for params, reason in the_plan.skipped:
        print(f"skip  {describe(params)}: {reason}")
    for note in tuner.space.notes:
        print(f"note  {note}")
    fixed = " ".join(f"{k}={v}" for k, v in tuner.space.fixed.items()) or "(none)"
    print(f"{len(the_plan.candidates)} trials; fixed settings: {fixed}")
    return ExitCode.OK


def _print_summary(outcome: Any, out: Path) -> None:
    from rich.console import Console

    from llmserve.tune.report import BEST_ENV, describe, table

    objective = outcome.objective
    Console(width=160).print(table(outcome.records, objective))

    def line(label: str, record: dict[str, Any] | None) -> None:
        if record is None or not objective.measured(record):
            print(f"{label}: {'not measured' if record is None else record.get('reason')}")
            return
        text = (f"{label}: trial #{record['number']} {describe(record['params'])}: tune "
                f"{objective.scorer} {objective.score(record):.4f} at "
                f"{objective.tps(record):.1f} tok/s ({objective.basis})")
        test = record.get("test")
        if test and test.get("status") == "ok":
            text += (f"; {test['measure']['split']} {objective.scorer} "
                     f"{test['score'][objective.scorer]['mean']:.4f} at "
                     f"{test['tps'][objective.basis]['mean']:.1f} tok/s")
        elif test:
            text += f"; {test['measure']['split']}: {test['status']} ({test.get('reason')})"
        print(text)

    line("best   ", outcome.best)
    line("default", outcome.default)
    if outcome.best is None:
        print(f"no trial reached the floor ({objective.floor_source})")
    else:
        print(f"use it: source {out / BEST_ENV} && bash run_model.sh")
    print(f"results: {out}/ (tune_results.jsonl, best_params.json, tune_plot.png, table.txt)")
