"""`llmserve lmeval`: lm-evaluation-harness's gsm8k (or any task, --tasks) against the
service's OpenAI API."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmserve.argtypes import positive_int
from llmserve.errors import ExitCode, LlmserveError, ServerError
from llmserve.paths import GSM8K_TEST, RESULTS_ROOT

if TYPE_CHECKING:
    from llmserve.lmeval.run import Accuracy, LmEvalConfig
    from llmserve.process import ServerProcess

DEFAULT_URL = "http://127.0.0.1:8000"
LMEVAL_ROOT = RESULTS_ROOT / "lmeval"

DESCRIPTION = """\
Run lm-evaluation-harness (lm-eval 0.4.13) as a client of the service's OpenAI API, on
GSM8K (task gsm8k_llmserve: lm-eval's gsm8k prompt, 5-shot, strict-match and
flexible-extract exact_match, on the repository's data/gsm8k/test.jsonl; no network).

lm-eval lives in its own venv, .venv-lmeval beside the repository, created on first use
(about a minute; log .venv-lmeval/llmserve-install.log).

  --api chat         lm_eval --model local-chat-completions --apply_chat_template
                     (POST /v1/chat/completions; the few-shot examples become turns)
  --api completions  lm_eval --model local-completions (POST /v1/completions, raw prompt)

The model name sent is --model, else the first id of GET /v1/models. With API_KEY set (or
--api-key), lm-eval sends it as its OPENAI_API_KEY bearer token.

output (in --out, default results/lmeval/<timestamp>/ of the repository):
  <model>/results_*.json   lm-eval's results (samples_*.jsonl beside it)
  summary.json             accuracy per filter, wall seconds, the lm_eval command, hardware
  lm_eval.log              lm-eval's output; server.log with --start
  tasks/gsm8k_llmserve.yaml  the task as run

The raw equivalent, from the repository root:
  .venv-lmeval/bin/lm_eval run --model local-chat-completions --apply_chat_template \\
    --model_args model=NAME,base_url=http://127.0.0.1:8000/v1/chat/completions,\\
num_concurrent=4,max_retries=3,tokenized_requests=False \\
    --tasks gsm8k_llmserve --include_path llmserve/lmeval/tasks --limit 20

exit codes: 0 done, 1 lm-eval or its venv failed, 2 bad arguments, 4 server down or failed
to start, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmserve lmeval", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_argument_group("server")
    where.add_argument("--url", default=DEFAULT_URL, help="the service (default %(default)s)")
    where.add_argument("--start", action="store_true",
                       help="start a server with the current environment (llmserve serve on "
                       "127.0.0.1 and a free port), evaluate, then stop it")
    where.add_argument("--start-timeout", type=float, default=900.0, metavar="S",
                       help="seconds --start waits for the server to be healthy (%(default)s)")
    where.add_argument("--api", choices=("chat", "completions"), default="chat",
                       help="which endpoint lm-eval calls (default %(default)s)")
    where.add_argument("--model", help="model name to send (default: first of GET /v1/models)")
    where.add_argument("--api-key", default=os.environ.get("API_KEY") or None,
                       help="bearer token for /v1/* (default: $API_KEY)")

    run = parser.add_argument_group("evaluation")
    run.add_argument("--tasks", default="gsm8k_llmserve", metavar="NAMES",
                     help="lm-eval task names, comma-separated (default %(default)s). Others "
                     "than gsm8k_llmserve (e.g. arc_easy, mmlu, hellaswag, wikitext) need "
                     "--api completions: lm-eval scores them with echo + logprobs on token "
                     "ids, tokenized by the server's /tokenize")
    run.add_argument("--task-dir", type=Path, metavar="DIR",
                     help="task YAML files to add (copied beside gsm8k_llmserve.yaml into "
                     "lm-eval's --include_path): tasks whose data is local (no hub here)")
    run.add_argument("--limit", type=positive_int, metavar="N",
                     help="only the first N questions (default: all 1319)")
    run.add_argument("--num-concurrent", type=positive_int, default=1, metavar="N",
                     help="requests lm-eval keeps in flight (default %(default)s)")
    run.add_argument("--num-fewshot", type=int, metavar="N",
                     help="few-shot examples per question (default: the task's 5)")
    run.add_argument("--max-gen-toks", type=positive_int, default=256, metavar="N",
                     help="max_tokens of each answer (default %(default)s, lm-eval's)")
    run.add_argument("--max-retries", type=int, default=3, metavar="N",
                     help="lm-eval's retries of a failed request (default %(default)s)")
    run.add_argument("--timeout", type=positive_int, default=600, metavar="S",
                     help="seconds one request may take (default %(default)s)")
    run.add_argument("--data", type=Path, default=GSM8K_TEST,
                     help="GSM8K jsonl ({question, answer}); default the repository's copy")
    run.add_argument("--out", type=Path, help="output folder (default results/lmeval/<time>)")
    run.add_argument("--quiet", action="store_true", help="lm-eval's output to the log only")
    run.add_argument("lm_eval_args", nargs="*", metavar="-- LM_EVAL_ARG",
                     help="after `--`: more arguments for `lm_eval run` as they are")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_fewshot is not None and args.num_fewshot < 0:
        parser.error(f"--num-fewshot must be 0 or more, not {args.num_fewshot}")
    if args.max_retries < 0:
        parser.error(f"--max-retries must be 0 or more, not {args.max_retries}")
    if not args.data.is_file():
        parser.error(f"--data {str(args.data)!r} does not exist")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        parser.error(f"--tasks {args.tasks!r} names no task")
    if tasks != ["gsm8k_llmserve"] and args.api != "completions":
        parser.error(f"--tasks {args.tasks} needs --api completions (loglikelihood tasks "
                     "score text through /v1/completions)")
    if args.task_dir is not None and not args.task_dir.is_dir():
        parser.error(f"--task-dir {str(args.task_dir)!r} is not a folder")
    args.tasks = tasks
    from llmserve.harness.signals import run_tool

    return run_tool("llmserve lmeval", lambda: _lmeval(args))


def _lmeval(args: argparse.Namespace) -> int:
    from llmserve.harness.metadata import timestamp

    out: Path = (args.out or LMEVAL_ROOT / timestamp()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.start:
        return _evaluate(args, args.url, out)
    from llmserve.harness.launch import start_service
    from llmserve.process import ServerFailed

    log = out / "server.log"

    def say_starting(server: ServerProcess) -> None:
        print(f"lmeval: starting a server at {server.health_url.rstrip('/')} (log {log}) ...",
              file=sys.stderr)

    try:
        service = start_service(log_path=log, start_timeout=args.start_timeout,
                                on_start=say_starting)
    except ServerFailed as error:
        raise ServerError(f"--start: {error}") from None
    with service:
        return _evaluate(args, service.url, out)


def _evaluate(args: argparse.Namespace, url: str, out: Path) -> int:
    from llmserve.harness.client import list_models
    from llmserve.harness.metadata import hardware, now_iso
    from llmserve.lmeval import run
    from llmserve.lmeval.env import LMEVAL_VERSION, ensure_env, lm_eval_bin
    from llmserve.records import write_json

    ensure_env()  # prints one progress line when it has to build the venv
    models = list_models(url, args.api_key)
    model = args.model or models[0]
    if args.model and args.model not in models:
        raise LlmserveError(f"--model {args.model!r} is not served at {url} (GET /v1/models: "
                            f"{', '.join(models)})")
    config = run.LmEvalConfig(
        url=url, model=model, out=out, api=args.api, limit=args.limit,
        num_concurrent=args.num_concurrent, max_retries=args.max_retries,
        max_gen_toks=args.max_gen_toks, num_fewshot=args.num_fewshot, timeout=args.timeout,
        data=args.data, extra=list(args.lm_eval_args), tasks=args.tasks,
    )
    include = run.write_task(out / "tasks", config.data)
    if args.task_dir is not None:
        for source in sorted(args.task_dir.glob("*.yaml")):
            shutil.copy(source, include / source.name)
    argv = run.command(config, lm_eval_bin(), include)
    print(f"lmeval: {','.join(config.tasks)} via {run.API_PATH[config.api]} of {url} "
          f"(model {model}, limit {config.limit or 'none'}); log {out / 'lm_eval.log'}",
          file=sys.stderr)
    start = time.perf_counter()
    run.run_lm_eval(argv, run.lm_eval_env(args.api_key), out / "lm_eval.log",
                    echo=not args.quiet)
    wall = time.perf_counter() - start
    path = run.results_file(out)
    if config.scores_text:
        return _report_metrics(config, url, model, wall, path, argv)
    found: list[Accuracy] = run.accuracies(run.read_results(path))
    write_json(out / "summary.json", {
        "time": now_iso(),
        "task": run.TASK,
        "api": config.api,
        "url": url,
        "model": model,
        "limit": config.limit,
        "num_concurrent": config.num_concurrent,
        "num_fewshot": config.num_fewshot,
        "max_gen_toks": config.max_gen_toks,
        "wall_seconds": round(wall, 1),
        "accuracy": {a.filter: {"exact_match": a.exact_match, "stderr": a.stderr,
                                "samples": a.samples} for a in found},
        "results_json": str(path),
        "lm_eval_version": LMEVAL_VERSION,
        "lm_eval_command": argv,
        "hardware": hardware(),
    })
    for accuracy in found:
        print(accuracy.line())
    print(f"wall time {wall:.1f} s; results: {path}")
    return int(ExitCode.OK)


def _report_metrics(config: LmEvalConfig, url: str, model: str, wall: float, path: Path,
                    argv: list[str]) -> int:
    """summary.json and one line per metric, for tasks other than the shipped GSM8K."""
    from llmserve.harness.metadata import hardware, now_iso
    from llmserve.lmeval import run
    from llmserve.lmeval.env import LMEVAL_VERSION
    from llmserve.records import write_json

    found = run.metrics(run.read_results(path), config.tasks)
    write_json(config.out / "summary.json", {
        "time": now_iso(), "tasks": config.tasks, "api": config.api, "url": url,
        "model": model, "limit": config.limit, "num_concurrent": config.num_concurrent,
        "num_fewshot": config.num_fewshot, "wall_seconds": round(wall, 1),
        "metrics": {f"{m.task} {m.name}": {"value": m.value, "stderr": m.stderr}
                    for m in found},
        "results_json": str(path), "lm_eval_version": LMEVAL_VERSION,
        "lm_eval_command": argv, "hardware": hardware(),
    })
    for metric in found:
        print(metric.line())
    print(f"wall time {wall:.1f} s; results: {path}")
    return int(ExitCode.OK)
