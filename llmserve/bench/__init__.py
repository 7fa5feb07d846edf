"""The benchmark: /predict against raw vLLM, `vllm serve` and transformers, in one run.

Same model, same templated prompt token ids, same engine settings for every system; each
system runs in its own process, one after another. See `python bench.py --help`.
"""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix (bad flag, missing model or data): printed as one line."""
