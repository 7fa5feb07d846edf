"""The load script (`llmserve load`): many concurrent /predict requests at once, checked.

It sends N single-prompt requests and M list requests of K prompts, all at the same moment
(defaults: 1000 singles and 10 lists of 100, issue #11's load), to --url or to a server it
starts (--start; DTYPE=float32 and TEMPERATURE=0 unless --env says otherwise), and reports:
  * failures: every request that did not answer 200 with one answer per prompt (0 expected);
  * latency p50/p90/p99 per kind (single, list), send to whole body received;
  * output tokens/s: the sum of X-Output-Tokens over the wall time of the whole load;
  * with --mix N, N each of a streamed chat, a JSON-schema chat and a named tool call over
    /v1 in the same load, each checked (llmserve.load_mix); the engine must hold nothing
    afterwards, and a started server's memory (RSS of its process tree) is recorded before
    and after;
  * answers matched to their prompts: every prompt is distinct, and a random sample of them
    (--verify) is sent again after the load, one at a time with nothing else in flight; with
    greedy float32 decoding the answer must equal the one the prompt got under load. (bf16
    answers change with the batch they run in, so a bf16 server shows mismatches that are
    numerics, not mix-ups: the check warns when /info's dtype is not float32.)

Connections: one per request. A single httpx pool shared by 1000 concurrent requests spends
its time matching queued requests to connections (llmserve.bench.client.Users records the
measurement), so each request gets a client of its own (bench.client.async_client).

The record (JSON, written atomically) goes to --out (default results/load/<timestamp>.json).
Exit codes: 0 no failure and no mismatch, 1 failures or mismatches, 2 bad arguments,
4 server down or failed to start, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmserve.argtypes import add_env, positive_int
from llmserve.errors import ExitCode, LlmserveError, ServerError
from llmserve.load_mix import KINDS, MixOutcome
from llmserve.paths import DATA_JSONL, RESULTS_ROOT

LOAD_ROOT = RESULTS_ROOT / "load"
DEFAULT_URL = "http://127.0.0.1:8000"
# The settings a started server gets unless --env overrides them: float32 because greedy bf16
# answers depend on the batch a prompt runs in, which would make the match check meaningless.
START_DEFAULTS = {"DTYPE": "float32", "TEMPERATURE": "0"}
MAX_SHOWN = 20  # failures and mismatches listed in full in the record and the output


@dataclass
class Outcome:
    """One request of the load: its prompts, and what came back (answers) or went wrong."""

    kind: str  # "single" or "list"
    prompts: list[str]
    answers: list[str] | None = None
    latency_s: float | None = None
    output_tokens: int | None = None
    error: str | None = None


@dataclass
class Plan:
    """What to send: `singles` one-prompt requests and `lists` list requests of `list_size`."""

    singles: int
    lists: int
    list_size: int
    outcomes: list[Outcome] = field(default_factory=list)
    mix: list[tuple[str, str]] = field(default_factory=list)  # (kind, question) over /v1
    mixed: list[MixOutcome] = field(default_factory=list)
    model: str = ""  # the served model name the /v1 requests give


def distinct_prompts(count: int, data: Path = DATA_JSONL) -> list[str]:
    """`count` different prompts: the data's questions in turn, each cycle numbered, so that
    no two are equal and an answer can be traced to its own prompt."""
    from llmserve.dataset import load_items

    questions = list(dict.fromkeys(item.question for item in load_items(data)))
    prompts = []
    for n in range(count):
        question = questions[n % len(questions)]
        cycle = n // len(questions)
        prompts.append(question if cycle == 0 else f"({cycle + 1}) {question}")
    if len(set(prompts)) != len(prompts):  # a question that already starts with "(2) "
        raise LlmserveError(f"{data}: cannot make {count} distinct prompts from its questions")
    return prompts


def make_plan(singles: int, lists: int, list_size: int, data: Path = DATA_JSONL,
              mix: int = 0) -> Plan:
    prompts = distinct_prompts(singles + lists * list_size + mix, data)
    plan = Plan(singles, lists, list_size)
    questions, prompts = prompts[len(prompts) - mix:], prompts[:len(prompts) - mix]
    plan.mix = [(kind, question) for question in questions for kind in KINDS]
    plan.outcomes = [Outcome("single", [p]) for p in prompts[:singles]]
    rest = prompts[singles:]
    plan.outcomes += [
        Outcome("list", rest[i * list_size : (i + 1) * list_size]) for i in range(lists)
    ]
    return plan


async def _send(url: str, outcome: Outcome, done: Any) -> None:
    """One request on a connection of its own; its result or failure goes into `outcome`."""
    import httpx

    from llmserve.bench.client import async_client
    from llmserve.harness.client import describe, post_predict

    prompt: str | list[str] = outcome.prompts if outcome.kind == "list" else outcome.prompts[0]
    try:
        async with async_client(url) as client:
            prediction = await post_predict(client, prompt, as_list=outcome.kind == "list")
        outcome.answers = prediction.responses
        outcome.latency_s = prediction.latency_s
        outcome.output_tokens = prediction.engine_output_tokens
        if outcome.output_tokens is None:
            outcome.error = "no X-Output-Tokens header"
    except ServerError as error:
        outcome.error = str(error)
    except httpx.HTTPError as error:
        outcome.error = f"{type(error).__name__}: {describe(error)}"
    finally:
        done()


async def run_load(url: str, plan: Plan, progress: bool) -> float:
    """Send every request of `plan` at once; returns the wall seconds until the last answer."""
    from tqdm import tqdm

    from llmserve.load_mix import send

    bar = tqdm(total=len(plan.outcomes) + len(plan.mix), desc="load", unit="req",
               file=sys.stderr, disable=not progress)

    async def mixed(kind: str, question: str) -> MixOutcome:
        try:
            return await send(url, kind, plan.model, question)
        finally:
            bar.update(1)

    start = time.perf_counter()
    try:
        results = await asyncio.gather(
            *(mixed(kind, question) for kind, question in plan.mix),
            *(_send(url, o, lambda: bar.update(1)) for o in plan.outcomes),
        )
    finally:
        bar.close()
    plan.mixed = [r for r in results if isinstance(r, MixOutcome)]
    return time.perf_counter() - start


@dataclass(frozen=True)
class Mismatch:
    kind: str
    prompt: str
    under_load: str
    alone: str | None  # None: the request alone failed
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "prompt": self.prompt, "under_load": self.under_load,
                "alone": self.alone, "error": self.error}


def verify(
    url: str, plan: Plan, count: int, seed: int, progress: bool
) -> tuple[int, list[Mismatch]]:
    """Send a random sample of the answered prompts again, one at a time, and compare.

    Returns how many were checked and the mismatches (a failed request alone counts as one).
    """
    from tqdm import tqdm

    from llmserve.harness.client import predict_sync

    answered = [
        (o.kind, prompt, answer)
        for o in plan.outcomes if o.answers is not None
        for prompt, answer in zip(o.prompts, o.answers, strict=True)
    ]
    sample = random.Random(seed).sample(answered, min(count, len(answered)))
    mismatches = []
    for kind, prompt, under_load in tqdm(sample, desc="verify", unit="prompt", file=sys.stderr,
                                         disable=not progress):
        try:
            alone = predict_sync(url, prompt).responses[0]
        except ServerError as error:
            mismatches.append(Mismatch(kind, prompt, under_load, None, str(error)))
            continue
        if alone != under_load:
            mismatches.append(Mismatch(kind, prompt, under_load, alone))
    return len(sample), mismatches


def summarize(plan: Plan, wall_s: float) -> dict[str, Any]:
    """Per-kind counts, failures and latency percentiles; output tokens and tokens/s."""
    from llmserve.harness.stats import percentiles

    kinds: dict[str, Any] = {}
    for kind in ("single", "list"):
        outcomes = [o for o in plan.outcomes if o.kind == kind]
        latencies = [o.latency_s for o in outcomes if o.error is None and o.latency_s is not None]
        kinds[kind] = {
            "requests": len(outcomes),
            "prompts": sum(len(o.prompts) for o in outcomes),
            "failures": sum(o.error is not None for o in outcomes),
            "latency_s": percentiles(latencies),
        }
    tokens = sum(o.output_tokens or 0 for o in plan.outcomes if o.error is None)
    failed = [o for o in plan.outcomes if o.error is not None]
    return {
        "kinds": kinds,
        "requests": len(plan.outcomes),
        "failures": len(failed),
        "failure_examples": [{"kind": o.kind, "error": o.error} for o in failed[:MAX_SHOWN]],
        "wall_s": wall_s,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / wall_s if wall_s > 0 else None,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmserve load", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_argument_group("server")
    where.add_argument("--url", default=DEFAULT_URL, help="the service (default %(default)s)")
    where.add_argument("--start", action="store_true",
                       help="start `llmserve serve` on a free port for the load, stop it after")
    add_env(where, "a setting of the started server (repeatable; default "
            + " ".join(f"{k}={v}" for k, v in START_DEFAULTS.items()) + ")")
    where.add_argument("--start-timeout", type=float, default=900.0, metavar="S",
                       help="seconds for a started server to be ready (default %(default)s)")
    load = parser.add_argument_group("load")
    load.add_argument("--singles", type=int, default=1000, metavar="N",
                      help="concurrent single-prompt requests (default %(default)s)")
    load.add_argument("--lists", type=int, default=10, metavar="M",
                      help="concurrent list requests (default %(default)s)")
    load.add_argument("--list-size", type=positive_int, default=100, metavar="K",
                      help="prompts per list request (default %(default)s)")
    load.add_argument("--mix", type=int, default=0, metavar="N",
                      help="also N each of a streamed chat, a JSON-schema chat and a named "
                      "tool call over /v1, checked (default %(default)s)")
    load.add_argument("--data", type=Path, default=DATA_JSONL,
                      help="questions to make the prompts from (default data.jsonl)")
    check = parser.add_argument_group("check")
    check.add_argument("--verify", type=int, default=50, metavar="N",
                       help="prompts sent again alone after the load and compared "
                       "(default %(default)s; 0: none)")
    check.add_argument("--seed", type=int, default=0, help="of the --verify sample (%(default)s)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="FILE",
                     help="the JSON record (default results/load/<timestamp>.json)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from llmserve.harness.signals import run_tool

    command = ["llmserve", "load", *(sys.argv[1:] if argv is None else argv)]
    return run_tool("llmserve load", lambda: _load(args, command))


def _load(args: argparse.Namespace, command: list[str]) -> int:
    from llmserve.harness.metadata import git_state, hardware, now_iso, timestamp

    for flag in ("singles", "lists", "verify", "mix"):
        if getattr(args, flag) < 0:
            raise LlmserveError(f"--{flag} {getattr(args, flag)}: a count, at least 0")
    if args.singles + args.lists == 0:
        raise LlmserveError("nothing to send: --singles and --lists are both 0")
    out = args.out or LOAD_ROOT / f"{timestamp()}.json"
    plan = make_plan(args.singles, args.lists, args.list_size, args.data, args.mix)
    progress = not args.no_progress and sys.stderr.isatty()
    settings = {**START_DEFAULTS, **dict(args.env)}  # of a started server
    record: dict[str, Any] = {
        "kind": "load", "started": now_iso(),
        "command": command,
        "config": {"singles": args.singles, "lists": args.lists, "list_size": args.list_size,
                   "verify": args.verify, "seed": args.seed, "data": str(args.data),
                   "mix": args.mix,
                   "start": args.start,
                   "settings": settings if args.start else None},
        "hardware": hardware(), "git": git_state(),
    }
    if args.start:
        from llmserve.harness.launch import start_service
        from llmserve.process import ServerFailed

        log = out.with_suffix(".server.log")
        print(f"starting a server (log {log}) ...", file=sys.stderr)
        try:
            service = start_service(settings, log_path=log,
                                    start_timeout=args.start_timeout)
        except ServerFailed as error:
            raise ServerError(f"--start: {error}") from None
        with service:  # stopped whatever happens, Ctrl-C and SIGTERM included
            return _measure(service.url, plan, args, progress, record, out, service.server.pid)
    return _measure(args.url, plan, args, progress, record, out)


def _rss_mb(pid: int | None) -> float | None:
    """Resident MB of a started server's process tree (None: not ours to measure)."""
    from llmserve.bench.memory import MB, tree_rss

    return None if pid is None else tree_rss(pid) / MB


def _engine_left(url: str, timeout: float = 30.0) -> dict[str, Any]:
    """/info's load once the engine holds nothing (a stream's end may lag its last byte a
    moment), or as last seen after `timeout` seconds."""
    from llmserve.harness.client import get_info

    deadline = time.monotonic() + timeout
    while True:
        load = dict(get_info(url).get("load") or {})
        idle = not load.get("engine_unfinished") and not load.get("waiting_prompts")
        if idle or time.monotonic() >= deadline:
            return {**load, "idle": idle}
        time.sleep(0.2)


def _measure(url: str, plan: Plan, args: argparse.Namespace, progress: bool,
             record: dict[str, Any], out: Path, pid: int | None = None) -> int:
    from llmserve.harness.client import get_info
    from llmserve.records import write_json

    info = get_info(url)  # a ServerError (exit 4) when nothing answers there
    dtype = (info.get("engine") or {}).get("dtype")
    if args.verify and dtype not in (None, "float32", "torch.float32"):
        print(f"load: warning: the server's dtype is {dtype}: greedy answers may change with "
              "the batch, so --verify can report numerics as mismatches", file=sys.stderr)
    record.update(url=url, info=info)
    total = plan.singles + plan.lists * plan.list_size
    print(f"load: {plan.singles} singles and {plan.lists} lists of {plan.list_size} "
          f"({total} prompts) at once to {url}", file=sys.stderr)
    plan.model = str(info.get("model") or "")  # the name /v1 requests give (/v1/models')
    rss_before = _rss_mb(pid)
    wall_s = asyncio.run(run_load(url, plan, progress))
    record["result"] = summarize(plan, wall_s)
    if plan.mix:
        from llmserve.load_mix import summarize as summarize_mix

        record["mix"] = summarize_mix(plan.mixed)
    record["engine_after"] = _engine_left(url)
    checked, mismatches = verify(url, plan, args.verify, args.seed, progress)
    record["verify"] = {"checked": checked, "mismatches": len(mismatches),
                        "examples": [m.to_json() for m in mismatches[:MAX_SHOWN]]}
    rss_after = _rss_mb(pid)
    record["server_rss_mb"] = {"before": rss_before, "after": rss_after,
                               "ratio": rss_after / rss_before if rss_before and rss_after
                               else None}
    failed = (record["result"]["failures"] > 0 or bool(mismatches)
              or record.get("mix", {}).get("failures", 0) > 0
              or not record["engine_after"]["idle"])
    record["exit_code"] = int(ExitCode.FAILED if failed else ExitCode.OK)
    write_json(out, record)
    _print(record, out)
    return record["exit_code"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print(record: dict[str, Any], out: Path) -> None:
    result, checked = record["result"], record["verify"]
    for kind, row in result["kinds"].items():
        if not row["requests"]:
            continue
        lat = row["latency_s"]
        print(f"{kind:>6}: {row['requests']} requests ({row['prompts']} prompts), "
              f"{row['failures']} failed, latency p50 {_ms(lat['p50'])} s "
              f"p99 {_ms(lat['p99'])} s")
    tps = result["output_tokens_per_s"]
    print(f"wall {result['wall_s']:.1f} s, {result['output_tokens']} output tokens, "
          + (f"{tps:.1f} output tokens/s" if tps is not None else "no tokens/s"))
    for example in result["failure_examples"]:
        print(f"failed {example['kind']}: {example['error']}")
    for kind, row in record.get("mix", {}).get("kinds", {}).items():
        print(f"{kind:>6}: {row['requests']} /v1 requests, {row['failures']} failed, "
              f"{row['invalid']} invalid, {row['cut']} cut at max_tokens")
    for example in record.get("mix", {}).get("examples", []):
        print(f"failed {example['kind']}: {example['error'] or example['invalid']}")
    after = record["engine_after"]
    print(f"engine after the load: {after.get('engine_unfinished')} unfinished, "
          f"{after.get('waiting_prompts')} waiting" + ("" if after["idle"] else " (NOT idle)"))
    rss = record["server_rss_mb"]
    if rss["ratio"] is not None:
        print(f"server RSS: {rss['before']:.0f} MB before, {rss['after']:.0f} MB after "
              f"({rss['ratio']:.3f}x)")
    print(f"verify: {checked['checked']} prompts sent alone, {checked['mismatches']} mismatched")
    for mismatch in checked["examples"]:
        print(f"mismatch ({mismatch['kind']}) {mismatch['prompt'][:60]!r}: under load "
              f"{mismatch['under_load'][:60]!r}, alone "
              f"{(mismatch['alone'] or mismatch['error'] or '')[:60]!r}")
    print(f"record: {out}")
