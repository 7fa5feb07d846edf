"""`llmserve gguf`: make GGUF levels of the bundled model for the llama.cpp engine."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmserve.errors import ExitCode, LlmserveError
from llmserve.gguf import GGUF_ROOT


def build_parser() -> argparse.ArgumentParser:
    from llmserve.gguf.levels import DEFAULT_LEVELS, LEVELS

    parser = argparse.ArgumentParser(
        prog="llmserve gguf",
        description="Write GGUF variants of the bundled model (F16 dequantized from the bundled "
        "Q4_1, the rest quantized from that F16 by llama.cpp), each with a JSON manifest. "
        "Levels already made are skipped.",
    )
    parser.add_argument(
        "--levels",
        default=",".join(DEFAULT_LEVELS),
        help=f"comma-separated levels of {', '.join(LEVELS)} (default %(default)s)",
    )
    parser.add_argument("--source", type=Path, help="source GGUF (default: the bundled model)")
    parser.add_argument(
        "--out", type=Path, default=GGUF_ROOT, help="output folder (default %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from llmserve.gguf.bundled import find_embedded_gguf
    from llmserve.gguf.levels import make_levels

    try:
        source = args.source or find_embedded_gguf()
        levels = [n.strip() for n in args.levels.split(",") if n.strip()]
        manifests = make_levels(source, args.out, levels)
    except LlmserveError as error:
        print(f"llmserve gguf: error: {error}", file=sys.stderr)
        return int(error.exit_code)
    for m in manifests:
        types = ", ".join(f"{k}:{v}" for k, v in m["tensor_types"].items())
        print(f"{m['level']:7} {m['size_bytes'] / 2**20:8.1f} MiB  {types}  {m['path']}")
        if m.get("note"):
            print(f"        note: {m['note']}")
    return int(ExitCode.OK)
