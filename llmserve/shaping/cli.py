"""`llmserve shape <subcommand>`: answer-shaping tools (`fit`: build a LENGTH_ROUTER file)."""

from __future__ import annotations

USAGE = "usage: llmserve shape fit --data data.jsonl --split tune --out router.json [--help]"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        print("  fit   build a length-router file from a split's reference answers")
        return 0 if argv else 2
    if argv[0] != "fit":
        print(f"llmserve shape: unknown subcommand {argv[0]!r}\n{USAGE}")
        return 2
    from llmserve.shaping.fit import main as fit_main

    return fit_main(argv[1:])
