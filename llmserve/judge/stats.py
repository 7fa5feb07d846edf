"""Scores, throughput and latency computed from the details records alone (the arithmetic
is harness.stats'; what it is applied to is the judge's).

Timing fields of a record (times are epoch seconds, comparable across resumed sessions):
  t_start, t_end       the client's send and receive times of the record's request
  latency_s            t_end - t_start, measured with a monotonic clock
  engine_seconds       X-Engine-Seconds of the request (None when the server sent none)
  engine_output_tokens X-Output-Tokens of the request
  request, session     which HTTP request (a batch request carries several items) and
                       which invocation of the judge (--resume starts a new session)

How the clocks are combined:
  wall seconds   the sum over sessions of (last t_end - first t_start) in that session, so
                 the time between an interrupt and its --resume is not counted.
  engine seconds the length of the union of the requests' engine intervals
                 [t_end - engine_seconds, t_end]. A request's engine time ends just before its
                 response is sent, so this places each interval on the client's clock. For
                 sequential and batch runs the union is the plain sum; for concurrent runs it
                 counts time in which several requests shared the engine once, which is what
                 "HTTP time removed" means for throughput. The plain sum (which would count
                 shared time N times, understating tokens/s N-fold) is reported too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmserve.harness.stats import percentiles, ratio, union_length
from llmserve.judge.scoring import SCORER_NAMES
from llmserve.records import Record


def _requests(records: list[Record]) -> list[Record]:
    """One record per HTTP request: batch items share their request's timing fields."""
    first: dict[tuple[Any, Any], Record] = {}
    for record in records:
        first.setdefault((record["session"], record["request"]), record)
    return list(first.values())


def _wall_seconds(records: list[Record]) -> float:
    spans: dict[Any, tuple[float, float]] = {}
    for record in records:
        lo, hi = spans.get(record["session"], (record["t_start"], record["t_end"]))
        spans[record["session"]] = (min(lo, record["t_start"]), max(hi, record["t_end"]))
    return sum(hi - lo for lo, hi in spans.values())


def summarize(records: list[Record]) -> dict[str, Any]:
    """The numbers of a run; every field is a plain JSON value."""
    n = len(records)
    requests = _requests(records)
    scores = {
        name: (float(np.mean([r["scores"][name] for r in records])) if n else None)
        for name in SCORER_NAMES
    }
    counted = [r["output_tokens"] for r in records]
    output_tokens = sum(counted) if counted and None not in counted else None
    engine_times = [r.get("engine_seconds") for r in requests]
    has_engine = bool(requests) and None not in engine_times
    engine_union = (
        union_length((r["t_end"] - r["engine_seconds"], r["t_end"]) for r in requests)
        if has_engine
        else None
    )
    engine_tokens = [r.get("engine_output_tokens") for r in requests]
    engine_output_tokens = sum(engine_tokens) if requests and None not in engine_tokens else None
    wall = _wall_seconds(records) if records else 0.0
    return {
        "items": n,
        "requests": len(requests),
        "sessions": len({r["session"] for r in records}),
        "scores": scores,
        "compat_blind_items": sum(1 for r in records if r.get("compat_blind")),
        "output_tokens": output_tokens,
        "engine_output_tokens": engine_output_tokens,
        "wall_seconds": wall,
        "engine_seconds": engine_union,
        "engine_seconds_sum": sum(engine_times) if has_engine else None,  # type: ignore[arg-type]
        "tokens_per_s_wall": ratio(output_tokens, wall),
        "tokens_per_s_engine": ratio(output_tokens, engine_union),
        "latency_s": percentiles([r["latency_s"] for r in requests]),
    }
