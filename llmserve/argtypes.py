"""argparse value types shared by the command-line tools (bench, judge, tune)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer of at least 1; argparse turns the error into a one-line usage message."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
