"""Command line of the benchmark (llmserve bench, bench.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from llmserve.argtypes import add_env, positive_int
from llmserve.bench.config import DEFAULT_SYSTEMS, FULL, PHASES, QUICK, SYSTEMS, BenchConfig
from llmserve.errors import ExitCode, LlmserveError
from llmserve.paths import DATA_JSONL, RESULTS_ROOT

BENCH_ROOT = RESULTS_ROOT / "bench"  # absolute: the benchmark works from any working directory

DESCRIPTION = f"""\
Throughput and latency of this service's /predict against raw vLLM, `vllm serve` and
transformers: same model, same templated prompt token ids, same engine settings, one run.

systems (--systems, comma-separated; all by default):
  vllm-offline        vllm.LLM.generate in its own process: the limit of any vLLM wrapper,
                      and the reference every ratio divides by
  predict-list        /predict with all N prompts in one list request
  predict-concurrent  /predict with N single requests, C in flight
  vllm-serve          vLLM's OpenAI server (/v1/completions), C in flight; it gets the
                      templated text and tokenizes it, as /predict does (--serve-input ids:
                      the token ids instead, which leaves tokenizing out of its work)
  transformers        transformers generate, left-padded batches of --hf-batch-size
They run one after another, each in its own process group, stopped before the next starts.

throughput: each row runs --warmup excluded runs, then --repeats runs of N prompts (every run
  its own prompts, so no prefix-cache hits across runs); figures are median [min–max] of
  output tokens/s and seconds. Output tokens are the engines' own counts of output token ids.
latency: --batch-size prompts of --input-len tokens generating --output-len tokens, one
  warm-up then --latency-iters iterations: TTFT, TPOT = (e2e - TTFT) / (tokens - 1), e2e
  p50/p99, weight MB (checkpoint tensors; transformers: its parameters) and peak RSS (and GPU)
  MB of the system's process tree. TTFT is a 1-token generation of other prompts of the same
  size, except /predict (it takes no per-request limit): there it is X-Engine-TTFT plus all
  time outside the engine, an upper bound.

presets: --quick {QUICK.num_prompts} prompts x {QUICK.input_len} in / {QUICK.output_len} out, \
eager engines (all vLLM systems alike), {QUICK.latency_iters} latency iterations;
  default {FULL.num_prompts} x {FULL.input_len} / {FULL.output_len}, engines as ENFORCE_EAGER \
says, {FULL.latency_iters} iterations.
  Any size flag overrides the preset. Engine settings come from the service's environment
  variables (MAX_NUM_SEQS, DTYPE, GPU_MEMORY_UTILIZATION, ...); MAX_NEW_TOKENS and IGNORE_EOS
  are set from --output-len and --ignore-eos for every system, and an unset
  MAX_NUM_BATCHED_TOKENS is pinned to offline LLM's default (vllm serve's own is smaller).

CPU: unless --no-cpu-env, every engine gets the engine's launch environment (vLLM on CPU:
  llmserve.engines.vllm.cpu_env's defaults, what `llmserve serve` and run_model.sh serve with),
  for variables not already set; with --no-cpu-env no system gets them, the service included.

output (--out, default results/bench/<timestamp>/ of the repository): record.json (rewritten
  after every
  figure: hardware, packages, settings, git commit, figures), results.md, chart.png and a log
  per system. The markdown table is printed too. --resume adds to an existing --out: split a
  long run over several invocations (each under a time limit), or finish one cut short (an
  interrupted run, Ctrl-C or SIGTERM, keeps the figures measured so far).
exit codes: 0 done, 1 a system failed (the others' figures are kept), 2 bad arguments,
  130 interrupted.
"""


def parse_systems(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown system(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SYSTEMS)}"
        )
    return tuple(s for s in SYSTEMS if s in names)  # run order is fixed, not the flag's


def parse_phases(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names or any(n not in PHASES for n in names):
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)}")
    return tuple(p for p in PHASES if p in names)


def parse_replicas(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        counts = ()
    if not counts or any(n < 1 or n > 64 for n in counts):
        raise argparse.ArgumentTypeError(f"expected counts 1..64 like 1,2; got {text!r}")
    return tuple(sorted(set(counts)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmserve bench", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small sizes, eager engines")
    p.add_argument("--systems", type=parse_systems, default=DEFAULT_SYSTEMS,
                   help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all but "
                   "the llamacpp-* rows, which need llama-cpp-python, and the vllm bench serve "
                   "pair v1-completions,vllm-serve-bench)")
    p.add_argument("--phases", type=parse_phases, default=PHASES,
                   help="throughput, latency or both (default)")
    p.add_argument("--source", choices=("synthetic", "data"), default="synthetic",
                   help="throughput prompts: synthetic of exactly --input-len tokens "
                   "(default), or the questions of --data")
    p.add_argument("--data", type=Path, default=DATA_JSONL,
                   help="data file for --source data (judge formats; default: the "
                   "repository's data.jsonl)")
    p.add_argument("--num-prompts", "-n", type=positive_int, help="prompts per throughput run (N)")
    p.add_argument("--input-len", type=positive_int, help="prompt tokens after templating")
    p.add_argument("--output-len", type=positive_int, help="output tokens per prompt (at most, "
                   "exactly with --ignore-eos)")
    p.add_argument("--concurrency", "-c", type=positive_int,
                   help="requests in flight for the concurrent rows (C); default "
                   "min(N, MAX_NUM_SEQS)")
    p.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                   help="every system generates exactly --output-len tokens (default on)")
    p.add_argument("--repeats", type=positive_int, default=3, help="measured runs per row")
    p.add_argument("--warmup", type=int, default=1, help="excluded runs before them")
    p.add_argument("--batch-size", type=positive_int, help="latency batch size")
    p.add_argument("--latency-iters", type=positive_int, help="measured latency iterations")
    p.add_argument("--hf-batch-size", type=positive_int, help="transformers batch; default C")
    p.add_argument("--serve-input", choices=("text", "ids"), default="text",
                   help="what vllm serve receives: the templated text (default), or its "
                   "token ids")
    p.add_argument("--eager", action=argparse.BooleanOptionalAction, default=None,
                   help="ENFORCE_EAGER for all vLLM systems (default: on with --quick, else "
                   "the environment's)")
    p.add_argument("--cpu-env", action=argparse.BooleanOptionalAction, default=True,
                   help="apply the engine's launch environment (vLLM on CPU: "
                   "llmserve.engines.vllm.cpu_env's defaults) to every system (default on)")
    add_env(p, "extra environment for every system (repeatable), e.g. for tuning")
    p.add_argument("--replicas", type=parse_replicas, default=(), metavar="N[,N...]",
                   help="sweep ENGINE_REPLICAS: the /predict rows once per count (rows "
                   "predict-list@N, predict-concurrent@N; 1 keeps the plain names), one "
                   "service start each; the other systems run one engine")
    p.add_argument("--out", type=Path, help="results folder")
    p.add_argument("--resume", action="store_true",
                   help="add to the record in --out (same flags and environment): systems "
                   "already measured there are skipped, the others run; a run split over "
                   "several invocations (or cut short) ends with one record")
    p.add_argument("--start-timeout", type=float, default=900.0,
                   help="seconds a system may take to start")
    p.add_argument("--report", type=Path, metavar="RECORD",
                   help="only render results.md and chart.png of an existing record.json")
    return p


def config_from(args: argparse.Namespace) -> BenchConfig:
    from llmserve.harness.metadata import timestamp

    preset = QUICK if args.quick else FULL
    out = args.out or BENCH_ROOT / (timestamp() + ("-quick" if args.quick else ""))
    return BenchConfig(
        systems=args.systems,
        phases=args.phases,
        source=args.source,
        data=args.data,
        num_prompts=args.num_prompts or preset.num_prompts,
        input_len=args.input_len or preset.input_len,
        output_len=args.output_len or preset.output_len,
        concurrency=args.concurrency,
        serve_input=args.serve_input,
        ignore_eos=args.ignore_eos,
        repeats=args.repeats,
        warmup=max(args.warmup, 0),
        batch_size=args.batch_size or preset.batch_size,
        latency_iters=args.latency_iters or preset.latency_iters,
        hf_batch_size=args.hf_batch_size,
        quick=args.quick,
        eager=args.eager if args.eager is not None else (True if args.quick else None),
        cpu_env=args.cpu_env,
        out=out,
        start_timeout=args.start_timeout,
        extra_env=dict(args.env),
        resume=args.resume,
        replicas=args.replicas,
    )


def render(record_path: Path, console: Console) -> str:
    """results.md and chart.png next to the record; returns the markdown."""
    from llmserve.bench.chart import draw
    from llmserve.bench.record import markdown
    from llmserve.records import write_atomic

    data = json.loads(record_path.read_text())
    text = markdown(data)
    write_atomic(record_path.with_name("results.md"), text + "\n")
    chart = draw(data, record_path.with_name("chart.png"))
    console.print(f"written: {record_path.with_name('results.md')}"
                  + (f", {chart}" if chart else ""), highlight=False)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from llmserve.harness.signals import run_tool

    def hint() -> str | None:
        record = args.out / "record.json" if args.out else None
        if record is None or not record.exists():
            return None
        return f"the figures measured so far are in {record}: add the rest with --resume"

    return run_tool("llmserve bench", lambda: _bench(args), on_interrupt=hint)


def _bench(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.report:
        if not args.report.is_file():
            raise LlmserveError(f"{args.report} does not exist")
        print(render(args.report, console))
        return int(ExitCode.OK)
    if args.resume and not args.out:
        raise LlmserveError("--resume needs the --out of the run to add to")
    config = config_from(args)
    args.out = config.out  # for the interrupt hint
    config.out.mkdir(parents=True, exist_ok=True)

    from llmserve.bench.runner import Runner

    record = asyncio.run(Runner(config, console).run())
    print(render(record.path, console))
    return int(ExitCode.OK if record.data["status"] == "complete" else ExitCode.FAILED)


if __name__ == "__main__":
    sys.exit(main())
