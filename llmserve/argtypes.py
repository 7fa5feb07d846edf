"""argparse value types and options shared by the command-line tools (bench, judge, tune,
load, quantize compare)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer of at least 1; argparse turns the error into a one-line usage message."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def env_pair(text: str) -> tuple[str, str]:
    """One `--env KEY=VALUE`: KEY upper-cased (a setting's or a variable's name); an empty
    VALUE unsets the setting."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.upper(), value


def add_env(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """The one way every tool takes settings and environment for what it starts:
    `--env KEY=VALUE`, repeatable; `args.env` is a list of (KEY, VALUE)."""
    parser.add_argument("--env", type=env_pair, action="append", default=[],
                        metavar="KEY=VALUE", help=help)
