"""The judge: score a running /predict service the way the grading machine does.

Accuracy is jieba RougeL-F1 under two tokenizations (the reference's `compat`, which is blind
to Chinese, and `cjk`, which is not); speed is output tokens per second, both over wall time
and over the engine time the server reports. See `python -m llmserve.judge --help`.
"""

from __future__ import annotations


class JudgeError(Exception):
    """A problem the user can fix (bad data, no server, bad flag): printed as one line."""


# Exit codes, documented in --help and the README; distinct so scripts can tell them apart.
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments or data (argparse uses 2 as well)
EXIT_GATE = 3  # the run finished but --min-score or --min-tps failed
EXIT_SERVER = 4  # the server was down, failed to start, or kept failing requests
EXIT_INTERRUPTED = 130  # Ctrl-C; the details file keeps what was scored: use --resume
