"""`llmserve shape fit`: build a length-router file from a data split's reference answers,
counting their lengths in the served model's tokens."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from llmserve.dataset import load_items, select
from llmserve.errors import LlmserveError
from llmserve.paths import DATA_JSONL
from llmserve.records import write_json
from llmserve.shaping.router import LengthRouter, words


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmserve shape fit",
        description="Build a LENGTH_ROUTER file: per tune question its jieba words and its "
        "reference answer's length in model tokens.",
    )
    parser.add_argument("--data", type=Path, default=DATA_JSONL, help="jsonl or .docx")
    parser.add_argument("--split", default="tune", help="which split to learn from")
    parser.add_argument("--out", type=Path, required=True, help="router file to write (JSON)")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="tokenizer (default: served model)"
    )
    parser.add_argument("--k", type=int, default=5, help="nearest questions to consult")
    parser.add_argument("--margin", type=float, default=1.2, help="routed = margin x median")
    parser.add_argument("--min-tokens", type=int, default=32, help="routed length at least")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.k < 1 or args.margin <= 0 or args.min_tokens < 1:
        raise LlmserveError(f"--k={args.k}, --margin={args.margin}, --min-tokens must be positive")
    items = select(load_items(args.data), args.split, None)
    if not items:
        raise LlmserveError(f"{args.data}: no items in split {args.split!r}")
    from transformers import AutoTokenizer

    from llmserve.model import served_model_dir

    model_dir = served_model_dir(args.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    examples = [
        (words(item.question), len(tokenizer.encode(item.reference, add_special_tokens=False)))
        for item in tqdm(items, desc="fit", unit="q")
    ]
    router = LengthRouter.build(examples, args.k, args.margin, args.min_tokens)
    write_json(args.out, router.to_json())
    print(f"wrote {args.out}: {len(examples)} examples, {len(router.vocabulary)} words")
    return 0
