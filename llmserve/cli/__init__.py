"""The one command line, `llmserve <command> [args...]` (also `python -m llmserve`).

Modelled on vLLM's `entrypoints/cli` (one small `Command` per subcommand) and Simon Willison's
`llm`, with one difference that matters here: nothing is imported until a command runs. The
table below names each command's `main(argv) -> int` as a "module:function" string, so
`llmserve --help` starts in tens of milliseconds instead of the seconds that importing vLLM,
torch, FastAPI, rich or jieba takes. Everything after the command name goes to that `main`
untouched, so `llmserve bench --help` is the benchmark's own help.

This module (and `llmserve.errors`, which it imports) must stay standard-library only: the
top-level scripts import it through `llmserve.cli.bootstrap` under whatever python a user
typed, before they re-execute under the project's virtual environment.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from llmserve.errors import ExitCode, LlmserveError

PROG = "llmserve"


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, a one-line help, and the `main(argv) -> int` that runs it."""

    name: str
    help: str
    target: str  # "package.module:function", imported only when the command runs
    # SIGTERM and SIGINT raise KeyboardInterrupt (exit 130), as in every tool; `serve` maps
    # SIGTERM to its own graceful drain (exit 0) instead.
    interruptible: bool = True

    def run(self, argv: Sequence[str]) -> int:
        """Import the command's module now, and run its main on the remaining arguments."""
        module_name, _, function = self.target.partition(":")
        entry = getattr(importlib.import_module(module_name), function)
        return int(entry(list(argv)) or 0)


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        "serve POST /predict, the OpenAI API /v1, / and /info (uvicorn; HOST, PORT)",
        "llmserve.cli.serve:main",
        interruptible=False,
    ),
    Command(
        "judge",
        "score the running service like the grader (eval_local.py, judge.sh)",
        "llmserve.judge.cli:main",
    ),
    Command(
        "bench",
        "benchmark /predict against raw vLLM, vllm serve, transformers (bench.py)",
        "llmserve.bench.cli:main",
    ),
    Command(
        "quantize",
        "make quantized variants and rank them on a scoreboard (quantize.py)",
        "llmserve.quantize.cli:main",
    ),
    Command(
        "gguf",
        "make GGUF levels (F16, Q8_0, Q4_K_M, Q2_K) of the bundled model for ENGINE=llamacpp",
        "llmserve.gguf.cli:main",
    ),
    Command(
        "budget",
        "GSM8K accuracy against latency per token budget (MAX_NEW_TOKENS), BUDGET_HINT, engine",
        "llmserve.budget.cli:main",
    ),
    Command(
        "lmeval",
        "lm-evaluation-harness tasks (--tasks, loglikelihood too) against /v1, in .venv-lmeval",
        "llmserve.lmeval.cli:main",
    ),
    Command(
        "tune",
        "search settings for the most tokens/s above a score floor (auto_tune.py)",
        "llmserve.tune.cli:main",
    ),
    Command(
        "finetune",
        "LoRA fine-tune on the tune split; `finetune merge` merges an adapter (finetune.py)",
        "llmserve.finetune.cli:main",
    ),
    Command(
        "shape",
        "answer shaping: `shape fit` builds a LENGTH_ROUTER file from the tune split",
        "llmserve.shaping.cli:main",
    ),
    Command(
        "pad-heads",
        "copy a checkpoint with zero attention heads added so TENSOR_PARALLEL_SIZE divides them",
        "llmserve.pad_heads:main",
    ),
    Command(
        "upload",
        "upload a model or adapter folder to ModelScope (MODELSCOPE_API_TOKEN)",
        "llmserve.upload:main",
    ),
    Command(
        "load",
        "1000 concurrent singles and 10 lists of 100 at /predict, answers checked (load test)",
        "llmserve.load:main",
    ),
    Command(
        "model",
        "prepare the model the settings point at and print its directory",
        "llmserve.model:main",
    ),
    Command(
        "download",
        "download MODEL_ID from ModelScope into MODELS_ROOT (download_model.py)",
        "llmserve.download:main",
    ),
    Command(
        "env",
        "check, or rewrite with --write, docs/settings.md, docs/exit-codes.md, env_force.sh",
        "llmserve.envdoc:main",
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}


def usage() -> str:
    """The top-level help: every command with its one-line help."""
    width = max(len(command.name) for command in COMMANDS)
    lines = [
        f"usage: {PROG} <command> [args...]",
        "",
        "An LLM inference service (vLLM behind POST /predict) and the tools around it.",
        "",
        "commands:",
        *(f"  {command.name:<{width}}  {command.help}" for command in COMMANDS),
        "",
        f"`{PROG} <command> --help` shows a command's options. Settings are environment",
        "variables (docs/settings.md, `llmserve env`); exit codes: docs/exit-codes.md.",
    ]
    return "\n".join(lines)


def version() -> str:
    """The installed distribution's version ("unknown" when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version(PROG)
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run `llmserve <command> [args...]`; returns the command's exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        # No command is a usage error (2), not a silent success: `python -m llmserve` used to
        # serve, and a script that still runs it that way should fail loudly.
        print(usage(), file=sys.stderr)
        return int(ExitCode.USAGE)
    name, rest = args[0], args[1:]
    if name in ("-h", "--help", "help") and not rest:
        print(usage())
        return int(ExitCode.OK)
    if name == "help":  # `llmserve help bench` is `llmserve bench --help`
        name, rest = rest[0], ["--help"]
    if name == "--version":
        print(f"{PROG} {version()}")
        return int(ExitCode.OK)
    command = BY_NAME.get(name)
    if command is None:
        known = ", ".join(BY_NAME)
        print(f"{PROG}: error: unknown command {name!r} (known: {known})", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        if not command.interruptible:
            return command.run(rest)
        from llmserve.harness.signals import interrupts_raise  # standard library only

        with interrupts_raise():
            return command.run(rest)
    except LlmserveError as error:  # the tools catch their own; this covers the rest
        print(f"{PROG} {name}: error: {error}", file=sys.stderr)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print(f"{PROG} {name}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
