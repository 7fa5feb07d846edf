"""Summary arithmetic, gates and the details file, on records written by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmserve.errors import ExitCode, LlmserveError
from llmserve.judge.details import read_details
from llmserve.judge.gates import check_gates
from llmserve.judge.stats import summarize
from llmserve.records import JsonlWriter


def record(item_id: str, t_start: float, t_end: float, engine: float | None = None, *,
           session: int = 1, request: int | None = None, tokens: int = 10,
           cjk: float = 0.5, compat: float = 0.0) -> dict[str, Any]:
    return {
        "id": item_id, "scores": {"cjk": cjk, "compat": compat}, "compat_blind": compat == 0,
        "output_tokens": tokens, "latency_s": t_end - t_start, "engine_seconds": engine,
        "engine_output_tokens": tokens, "request": request if request is not None else item_id,
        "request_size": 1, "session": session, "t_start": t_start, "t_end": t_end,
    }


def test_sequential_summary() -> None:
    records = [record("a", 0, 2, 1.5, cjk=1.0), record("b", 2, 4, 1.5, cjk=0.0)]
    summary = summarize(records)
    assert summary["scores"] == {"cjk": 0.5, "compat": 0.0}
    assert summary["compat_blind_items"] == 2
    assert summary["output_tokens"] == 20
    assert summary["wall_seconds"] == 4
    assert summary["engine_seconds"] == pytest.approx(3.0)
    assert summary["tokens_per_s_wall"] == 5.0
    assert summary["tokens_per_s_engine"] == pytest.approx(20 / 3)


def test_concurrent_engine_time_is_a_union_not_a_sum() -> None:
    # Two requests sharing the engine over [1, 3]: 2 s of engine time, not 4.
    records = [record("a", 0, 3, 2.0), record("b", 0, 3, 2.0)]
    summary = summarize(records)
    assert summary["engine_seconds"] == pytest.approx(2.0)
    assert summary["engine_seconds_sum"] == pytest.approx(4.0)
    assert summary["tokens_per_s_engine"] == pytest.approx(10.0)


def test_batch_items_share_one_request() -> None:
    records = [record(i, 0, 4, 3.0, request=1) for i in "abc"]
    summary = summarize(records)
    assert summary["requests"] == 1
    assert summary["engine_output_tokens"] == 10  # the request's header, counted once
    assert summary["output_tokens"] == 30
    assert summary["latency_s"]["p50"] == 4


def test_wall_time_skips_the_pause_between_sessions() -> None:
    records = [record("a", 0, 2, session=1), record("b", 100, 103, session=2)]
    summary = summarize(records)
    assert summary["wall_seconds"] == 5
    assert summary["engine_seconds"] is None  # no X-Engine-Seconds: unmeasured, not zero
    assert summary["tokens_per_s_engine"] is None


def test_gates() -> None:
    summary = summarize([record("a", 0, 2, 1.0, cjk=0.6, compat=0.1)])
    gates = check_gates(summary, "cjk", min_score=0.5, min_tps=6.0)
    assert [(g.name, g.passed) for g in gates] == [("score[cjk]", True),
                                                   ("tokens/s[engine]", True)]
    gates = check_gates(summary, "compat", min_score=0.5, min_tps=6.0, tps_basis="wall")
    assert [(g.name, g.passed) for g in gates] == [("score[compat]", False),
                                                   ("tokens/s[wall]", False)]
    assert check_gates(summary, "cjk", None, None) == []


def test_unmeasured_tps_fails_its_gate() -> None:
    summary = summarize([record("a", 0, 2, None)])
    (gate,) = check_gates(summary, "cjk", None, 1.0, tps_basis="engine")
    assert not gate.passed and "unmeasured" in gate.describe()


def test_details_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "details.jsonl"
    with JsonlWriter(path) as writer:
        writer.write(record("a", 0, 1))
        writer.write(record("b", 1, 2))
    with path.open("a") as file:
        file.write('{"id": "c", "scor')  # a run killed mid-write
    assert [r["id"] for r in read_details(path)] == ["a", "b"]
    assert path.read_text().endswith('"scor')  # reading alone changes nothing
    read_details(path, repair=True)
    assert path.read_text().endswith("\n")
    with JsonlWriter(path) as writer:
        writer.write(record("c", 2, 3))
    assert [r["id"] for r in read_details(path)] == ["a", "b", "c"]


def test_details_corruption_and_duplicates_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "details.jsonl"
    path.write_text(json.dumps(record("a", 0, 1)) + "\nnot json\n")
    with pytest.raises(LlmserveError, match=r"details\.jsonl:2: not a JSON record") as caught:
        read_details(path)
    assert caught.value.exit_code is ExitCode.USAGE
    path.write_text(json.dumps(record("a", 0, 1)) + '\n{"no": "id"}\n')
    with pytest.raises(LlmserveError, match=r"details\.jsonl:2: not a details record"):
        read_details(path)
    path.write_text((json.dumps(record("a", 0, 1)) + "\n") * 2)
    with pytest.raises(LlmserveError, match=r"details\.jsonl:2: item 'a' again"):
        read_details(path)
