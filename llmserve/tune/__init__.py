"""The auto-tuner: search engine and decoding settings for the most tokens/s above a score floor.

Each trial starts the real server (run_model.sh) with one setting of the search space, runs the
judge on the tune split, and is journaled crash-safely, so a rerun resumes. See
`python auto_tune.py --help` and the README's "Auto-tuning" section.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = Path("results") / "tune"
DEFAULT_SPACE = Path("tune_space.yaml")


class TuneError(Exception):
    """A problem the user can fix (bad space file, bad flag, locked folder): one line."""


# Exit codes, the judge's where they mean the same.
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments or search space: nothing ran
EXIT_NO_BEST = 3  # the search finished but no trial reached the floor
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: rerun the same command to resume
