"""Command line of quantize.py: env, calibrate, make, compare."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmserve import paths
from llmserve.errors import ExitCode, LlmserveError
from llmserve.harness.signals import run_tool
from llmserve.quantize import CALIBRATION_DIR, QUANT_ROOT, VARIANTS_ROOT
from llmserve.quantize.calibration import CalibrationSet, load_calibration, make_calibration
from llmserve.quantize.recipes import VARIANTS

DESCRIPTION = """\
Quantize the served model with llm-compressor and rank the variants served by vLLM.

  env        create the quantization venv (.venv-quant) now; `make` does it on demand
  calibrate  draw calibration samples from data.jsonl's tune split
  make       turn MODEL_DIR (default: the model the server would serve) into variants
  compare    serve each variant (and the original), measure, print and save the scoreboard

variants: """ + ", ".join(name if v.default else f"{name} (opt-in)"
                           for name, v in VARIANTS.items())


def csv_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    return names


CALIBRATION_DEFAULTS = {"data": paths.DATA_JSONL, "count": 32, "max_length": 512, "seed": 0}


def add_calibration_options(parser: argparse.ArgumentParser) -> None:
    # Defaults are None here so that `make` can tell a flag given from one left out.
    parser.add_argument("--data", type=Path, help="data with a tune split (default data.jsonl)")
    parser.add_argument("--count", type=int, help="calibration samples (default 32)")
    parser.add_argument("--max-length", type=int,
                        help="tokens per sample, at most (default 512)")
    parser.add_argument("--seed", type=int, help="sampling seed (default 0)")


def calibration_args(args: argparse.Namespace) -> dict[str, Any]:
    return {key: default if getattr(args, key) is None else getattr(args, key)
            for key, default in CALIBRATION_DEFAULTS.items()}


def existing_calibration(args: argparse.Namespace) -> CalibrationSet:
    """The set in --calibration; a calibration flag that disagrees with it is an error."""
    found = load_calibration(args.calibration)
    for key in ("count", "max_length", "seed"):
        given = getattr(args, key)
        if given is not None and given != found.meta[key]:
            flag = "--" + key.replace("_", "-")
            raise LlmserveError(
                f"{flag} {given} disagrees with the calibration set in {args.calibration} "
                f"({key} {found.meta[key]}): rerun `quantize.py calibrate {flag} {given}` "
                "or pass another --calibration folder")
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmserve quantize", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="create .venv-quant (llm-compressor) if it is missing")

    cal = sub.add_parser("calibrate", help="sample calibration data from the tune split")
    add_calibration_options(cal)
    cal.add_argument("--model-dir", type=Path, help="whose tokenizer/template (default: served)")
    cal.add_argument("--out", type=Path, default=CALIBRATION_DIR,
                     help="output folder (default %(default)s)")

    make = sub.add_parser("make", help="make variants with llm-compressor")
    make.add_argument("--model-dir", type=Path, help="checkpoint to quantize (default: served)")
    make.add_argument("--variants", type=csv_names,
                      default=[name for name, v in VARIANTS.items() if v.default],
                      help="comma-separated (default: "
                      f"{','.join(name for name, v in VARIANTS.items() if v.default)})")
    make.add_argument("--out", type=Path, default=VARIANTS_ROOT,
                      help="variants root (default %(default)s)")
    make.add_argument("--calibration", type=Path, default=CALIBRATION_DIR,
                      help="calibration set; drawn with the options below if missing "
                      "(default %(default)s)")
    make.add_argument("--force", action="store_true", help="remake variants already there")
    add_calibration_options(make)

    from llmserve.quantize.compare import add_compare_options

    add_compare_options(sub.add_parser(
        "compare", help="serve and score each variant and the original",
        description="Start the real server on each variant directory (MODEL_DIR=variant) and "
        "on the original, one at a time; measure the judge's RougeL (both scorers), GSM8K "
        "accuracy, TTFT/TPOT/throughput and weight size; print a table and write "
        f"scoreboard.json, rows.jsonl and scoreboard.png (default under {QUANT_ROOT}/).",
    ))
    return parser


def run(args: argparse.Namespace) -> int:
    from llmserve import model
    if args.command == "env":
        from llmserve.quantize.env import ensure_env

        print(ensure_env())
        return ExitCode.OK
    if args.command == "calibrate":
        made = make_calibration(model_dir=model.served_model_dir(args.model_dir), out=args.out,
                                **calibration_args(args))
        meta = made.meta
        print(f"{made.directory}: {meta['count']} samples from split {meta['split']!r} "
              f"({meta['tokens']} tokens, {meta['truncated']} truncated to {meta['max_length']})")
        return ExitCode.OK
    if args.command == "make":
        from llmserve.quantize.make import make_variants

        model_dir = model.served_model_dir(args.model_dir)
        calibration = None
        if any(VARIANTS[name].calibrated for name in args.variants):
            if (args.calibration / "meta.json").is_file():
                calibration = existing_calibration(args)
            else:
                calibration = make_calibration(model_dir=model_dir, out=args.calibration,
                                               **calibration_args(args))
        seed = calibration_args(args)["seed"]
        results = make_variants(args.variants, model_dir, args.out, calibration, seed,
                                args.force)
        for made in results:
            print(f"{made.status:6}  {made.name:12}  {made.path}  {made.detail}")
        return ExitCode.FAILED if any(m.status == "failed" for m in results) else ExitCode.OK
    from llmserve.quantize.compare import run_compare

    return run_compare(args, model.served_model_dir(args.model_dir))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool("llmserve quantize", lambda: run(args))
