"""Command line of the judge (llmserve judge, eval_local.py, python -m llmserve.judge,
judge.sh)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmserve.argtypes import positive_int
from llmserve.dataset import ALL_SPLITS
from llmserve.errors import LlmserveError, ServerError
from llmserve.paths import DATA_JSONL, RESULTS_ROOT

if TYPE_CHECKING:  # the runner pulls in jieba, rouge and tqdm: imported once args are parsed
    from llmserve.judge.runner import RunConfig, RunResult
    from llmserve.process import ServerProcess

DEFAULT_URL = "http://127.0.0.1:8000"
JUDGE_ROOT = RESULTS_ROOT / "judge"  # absolute: the judge works from any working directory

DESCRIPTION = """\
Score a running /predict service the way the grading machine does: accuracy as jieba
RougeL-F1 and speed as output tokens per second, plus latency percentiles.

scores (both always reported, side by side):
  cjk     RougeL F1 over jieba words (lower-cased; whitespace/punctuation dropped). Default.
  compat  the reference implementation exactly: rouge_score's RougeScorer(["rougeL"]) on
          " ".join(jieba.lcut(text)). Its tokenizer keeps only [a-z0-9] runs, so Chinese
          words are invisible to it: an all-Chinese answer scores 0 even against itself.

api (--api):
  predict  POST /predict {"prompt": question}, as the grader sends it (default).
  chat     POST /v1/chat/completions {"messages": [{"role": "user", "content": question}]};
           the answer is choices[0].message.content, the engine's token count
           usage.completion_tokens. Not with --batch (lists are a /predict feature).

speed:
  output tokens = each response re-encoded with the served model's tokenizer (from /info's
  engine.model_dir, else --tokenizer, else $MODEL_DIR; local files only).
  tokens/s wall   = output tokens / wall seconds of the run (HTTP and client time included).
  tokens/s engine = output tokens / engine seconds, from the X-Engine-Seconds header. Each
                    request's engine time is placed as [response time - X-Engine-Seconds,
                    response time] and the union of those intervals is taken, so engine time
                    shared by concurrent requests is counted once (for sequential and batch
                    runs the union equals the sum; the sum is in summary.json too).
  latency p50/p90/p99 is per HTTP request (in --batch mode, per batch).

data: data.jsonl lines ({"messages": [user, assistant]}, {"question", "answer"} or
  {"prompt", "reference"}, each with optional "id" and "split"), or a .docx of
  问题：/答案： paragraphs. --split keeps the items of that split when the data has splits
  (items without a split then belong to none and are skipped); data without any split is
  used whole. --split all uses everything.

output (in --out, default results/judge/<timestamp>/ of the repository):
  details.jsonl   one line per item, appended and flushed as it arrives
  summary.json    scores, tokens/s, latency, gates, /info snapshot, git commit, hardware
  sessions.jsonl  the settings of each invocation (a resumed run has several)
  server.log      with --start
An interrupted run (Ctrl-C or SIGTERM) keeps what it scored: rerun with --resume (and the
same --out; without --out, the newest folder in results/judge/) to score only the rest.

exit codes: 0 passed (or no gates), 2 bad arguments or data, 3 a gate failed
(--min-score/--min-tps), 4 server down, failed to start or kept failing, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmserve judge",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("server")
    where.add_argument("--url", default=DEFAULT_URL, help="the service (default %(default)s)")
    where.add_argument("--start", action="store_true",
                       help="start a server with the current environment (llmserve serve, as "
                       "run_model.sh does, on 127.0.0.1 and a free port), evaluate, then stop "
                       "it")
    where.add_argument("--start-timeout", type=float, default=900.0, metavar="S",
                       help="seconds --start waits for the server to be healthy (%(default)s)")
    where.add_argument("--wait", type=float, default=30.0, metavar="S",
                       help="seconds to retry GET / while nothing answers (%(default)s)")
    where.add_argument("--wait-loading", type=float, default=900.0, metavar="S",
                       help="seconds to wait while GET / answers 503, i.e. the engine is "
                       "loading (%(default)s)")
    where.add_argument("--timeout", type=float, default=600.0, metavar="S",
                       help="seconds one /predict request may take (%(default)s)")
    where.add_argument("--retries", type=int, default=5,
                       help="retries of a failed request, with exponential back-off "
                       "(%(default)s)")
    where.add_argument("--api", choices=("predict", "chat"), default="predict",
                       help="score through POST /predict (the grader's) or the OpenAI API's "
                       "POST /v1/chat/completions, each question one user message "
                       "(default %(default)s)")
    where.add_argument("--model", help="with --api chat: the model name to send (default: "
                       "the first of GET /v1/models)")
    where.add_argument("--api-key", default=os.environ.get("API_KEY") or None,
                       help="with --api chat: bearer token for /v1/* (default: $API_KEY)")

    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, default=DATA_JSONL,
                      help="jsonl or .docx (default: the repository's data.jsonl)")
    data.add_argument("--split", default="test",
                      help=f"split to evaluate, or {ALL_SPLITS!r} (default %(default)s)")
    data.add_argument("--limit", type=positive_int, help="only the first N selected items")

    mode = parser.add_argument_group("mode (default: sequential single requests)")
    mode.add_argument("--batch", action="store_true",
                      help='send lists: {"prompt": [...]} of --batch-size prompts per request')
    mode.add_argument("--batch-size", type=positive_int, metavar="N",
                      help="prompts per batch request (default: the server's max_batch_prompts)")
    mode.add_argument("--concurrency", type=positive_int, default=1, metavar="N",
                      help="requests in flight at once (default %(default)s)")

    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, help="output folder (default results/judge/<timestamp>)")
    out.add_argument("--resume", action="store_true",
                     help="continue the run in --out, scoring only the items not yet there")
    out.add_argument("--tokenizer", type=Path, metavar="DIR",
                     help="checkpoint directory whose tokenizer counts output tokens")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")

    gates = parser.add_argument_group("gates (exit code 3 when one fails)")
    gates.add_argument("--scorer", choices=("cjk", "compat"), default="cjk",
                       help="the scorer --min-score checks (default %(default)s)")
    gates.add_argument("--min-score", type=float, metavar="F",
                       help="fail below this mean RougeL-F1 (0..1)")
    gates.add_argument("--min-tps", type=float, metavar="TPS",
                       help="fail below this many output tokens/s")
    gates.add_argument("--tps-basis", choices=("auto", "engine", "wall"), default="auto",
                       help="which tokens/s --min-tps checks; auto: engine when the server "
                       "reports X-Engine-Seconds, else wall (default %(default)s)")
    return parser


def newest_run(root: Path = JUDGE_ROOT) -> Path:
    runs = sorted(p.parent for p in root.glob("*/details.jsonl"))
    if not runs:
        raise LlmserveError(f"--resume without --out: no run in {root}/ to resume")
    return runs[-1]


NO_SERVER_HINT = (
    "  no server is answering there: start one with `bash run_model.sh` (in another terminal), "
    "or let the judge start one: `bash judge.sh --start`"
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from llmserve.harness.signals import run_tool

    out: list[Path] = []  # the run's folder, once known: for the resume hint
    return run_tool("llmserve judge", lambda: _judge(args, out),
                    on_interrupt=lambda: _resume_hint(out))


def _judge(args: argparse.Namespace, out_found: list[Path]) -> int:
    # Imported after parsing so that --help is instant (jieba, rouge, tqdm load slowly).
    from llmserve.harness.client import ServerDown
    from llmserve.harness.metadata import timestamp
    from llmserve.judge.report import render
    from llmserve.judge.runner import RunConfig, Runner

    if args.batch_size is not None and not args.batch:
        raise LlmserveError("--batch-size needs --batch")
    if args.api == "chat" and args.batch:
        raise LlmserveError("--batch sends lists to /predict: it needs --api predict")
    if args.model is not None and args.api != "chat":
        raise LlmserveError("--model names the model of /v1/chat/completions: it needs --api chat")
    if args.out is not None:
        out = args.out
    elif args.resume:
        out = newest_run()
    else:
        out = JUDGE_ROOT / timestamp()
    out_found.append(out)
    config = RunConfig(
        url=args.url, data=args.data, out=out, split=args.split, limit=args.limit,
        batch=args.batch, batch_size=args.batch_size, concurrency=args.concurrency,
        timeout=args.timeout, retries=args.retries, wait=args.wait,
        wait_loading=args.wait_loading, resume=args.resume,
        tokenizer=args.tokenizer, scorer=args.scorer, min_score=args.min_score,
        min_tps=args.min_tps, tps_basis=args.tps_basis, api=args.api, model=args.model,
        api_key=args.api_key,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    try:
        if args.start:
            result = _run_with_server(config, args.start_timeout)
        else:
            result = Runner(config).run()
    except ServerError as error:  # said with what to do next, as one error
        if isinstance(error, ServerDown):
            hint = None if args.start else NO_SERVER_HINT
        else:
            hint = _resume_hint(out_found)
            hint = f"  {hint}" if hint else None
        if hint is None:
            raise
        raise type(error)(f"{error}\n{hint}", error.exit_code) from error
    render(result.summary)
    for gate in result.gates:
        print(gate.describe())
    print(f"details and summary: {result.out}/")
    return result.exit_code


def _run_with_server(config: RunConfig, start_timeout: float) -> RunResult:
    """Start `llmserve serve` on a free port (never the user's PORT: a server already there
    would answer for ours), evaluate, and stop it whatever happens."""
    from llmserve.harness.launch import start_service
    from llmserve.judge.runner import Runner
    from llmserve.process import ServerFailed

    config.out.mkdir(parents=True, exist_ok=True)
    log = config.out / "server.log"

    def say_starting(server: ServerProcess) -> None:
        url = server.health_url.rstrip("/")
        print(f"starting a server at {url} (log {log}) ...", file=sys.stderr)

    try:
        service = start_service(log_path=log, start_timeout=start_timeout,
                                on_start=say_starting)
    except ServerFailed as error:
        raise ServerError(f"--start: {error}") from None
    with service:  # stopped whatever happens, Ctrl-C and SIGTERM included
        config.url = service.url
        return Runner(config).run()


def _resume_hint(out: list[Path]) -> str | None:
    if out and (out[-1] / "details.jsonl").exists():
        return f"the items scored so far are kept: continue with --resume --out {out[-1]}"
    return None
