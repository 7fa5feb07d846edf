"""`llmserve finetune`: LoRA SFT of the served model on a chat jsonl; `llmserve finetune merge`
merges an adapter into a full checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmserve.errors import ExitCode, LlmserveError
from llmserve.finetune.train import LoraOptions
from llmserve.paths import DATA_JSONL, RESULTS_ROOT

PROG = "llmserve finetune"
DEFAULT_DATA = DATA_JSONL
DEFAULT_OUTPUT = RESULTS_ROOT / "finetune"


# CPU defaults: 3 epochs at 1024 tokens ran 37-75 s a step on the 2-core Xeon (heading for
# an hour); 1 epoch at 512 trained on the 120 tune items in 316 s (loss 3.77 -> ~2.6).
CPU_EPOCHS = 1.0
CPU_MAX_LENGTH = 512


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="LoRA fine-tune (SFT) the served model on a chat jsonl (peft + trl). "
        "Trains on the data's tune split; the test split (what the judge scores) is never "
        "used. Writes a checkpoint each epoch (a rerun with the same --output resumes), "
        "then OUTPUT/adapter, OUTPUT/loss.png and OUTPUT/manifest.json. "
        "`llmserve finetune merge --help` merges an adapter into a full checkpoint.",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="chat jsonl (data.jsonl)")
    parser.add_argument(
        "--split", default="tune", help="split to train on (default tune; test is refused)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N examples only")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="base checkpoint (default: the model the settings serve)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="output folder")
    defaults = LoraOptions()
    parser.add_argument("--rank", type=int, default=defaults.rank, help="LoRA rank r")
    parser.add_argument("--alpha", type=int, default=defaults.alpha, help="LoRA alpha")
    parser.add_argument(
        "--epochs", type=float,
        help=f"passes over the data (default {defaults.epochs:g} on a GPU, "
        f"{CPU_EPOCHS:g} on CPU)",
    )  # fmt: skip
    parser.add_argument("--learning-rate", "--lr", type=float, default=defaults.learning_rate)
    parser.add_argument(
        "--max-length",
        type=int,
        help=f"tokens per example, longer ones are cut (default {defaults.max_length} on a "
        f"GPU, {CPU_MAX_LENGTH} on CPU)",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--max-steps",
        type=int,
        default=defaults.max_steps,
        help="stop after N optimizer steps (default: all epochs)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--qlora", action="store_true", help="4-bit base via bitsandbytes (CUDA GPU only)"
    )
    return parser


def merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} merge",
        description="Merge a LoRA adapter into its base model: a full HF checkpoint "
        "(tokenizer and chat template included) for MODEL_DIR, quantize and tune.",
    )
    parser.add_argument("adapter", type=Path, help="adapter folder (OUTPUT/adapter)")
    parser.add_argument("output", type=Path, help="folder for the merged checkpoint")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="base checkpoint (default: the one the adapter records)",
    )
    return parser


def run_train(argv: list[str]) -> int:
    from llmserve.finetune.data import conversations
    from llmserve.finetune.train import train

    args = train_parser().parse_args(argv)
    from llmserve.finetune.train import has_cuda

    if args.epochs is None or args.max_length is None:  # the device's defaults
        gpu = has_cuda()
        defaults = LoraOptions()
        if args.epochs is None:
            args.epochs = defaults.epochs if gpu else CPU_EPOCHS
        if args.max_length is None:
            args.max_length = defaults.max_length if gpu else CPU_MAX_LENGTH
    for name in ("rank", "alpha", "max_length", "batch_size"):
        if getattr(args, name) <= 0:
            raise LlmserveError(
                f"--{name.replace('_', '-')} must be positive, not {getattr(args, name)}"
            )
    options = LoraOptions(
        rank=args.rank, alpha=args.alpha, epochs=args.epochs, learning_rate=args.learning_rate,
        max_length=args.max_length, batch_size=args.batch_size, max_steps=args.max_steps,
        seed=args.seed, qlora=args.qlora,
    )  # fmt: skip
    from llmserve.finetune.train import check_qlora

    check_qlora(options)  # before loading anything
    rows = conversations(args.data, args.split, args.limit)
    from llmserve.model import served_model_dir

    base = args.base or served_model_dir()
    source = {"path": str(args.data), "split": args.split, "limit": args.limit}
    manifest = train(base.resolve(), rows, args.output, options, source)
    print(
        f"adapter: {args.output / 'adapter'}  steps: {manifest['global_step']}  "
        f"train loss: {manifest['train_loss']:.4f}  "
        f"seconds: {manifest['train_seconds_this_run']}"
    )
    return int(ExitCode.OK)


def run_merge(argv: list[str]) -> int:
    from llmserve.finetune.merge import merge

    args = merge_parser().parse_args(argv)
    print(f"merged: {merge(args.adapter, args.output, args.base)}")
    return int(ExitCode.OK)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["merge"]:
            return run_merge(argv[1:])
        return run_train(argv)
    except LlmserveError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return int(error.exit_code)
