"""The auto-tuner: search engine and decoding settings for the most tokens/s above a score floor.

Each trial starts the real server (`llmserve serve`, as run_model.sh does) with one setting of
the search space, runs the judge on the tune split, and is journaled crash-safely, so a rerun
resumes. See `python auto_tune.py --help` and docs/tune.md.
"""

from __future__ import annotations

from llmserve.paths import RESULTS_ROOT, TUNE_SPACE

DEFAULT_OUT = RESULTS_ROOT / "tune"
DEFAULT_SPACE = TUNE_SPACE
