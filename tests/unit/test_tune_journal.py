"""The tuner's records and reports: crash-safe journal, lock, objective, best.env, plot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llmserve.envdoc import defaults
from llmserve.errors import LlmserveError
from llmserve.harness.launch import without_settings
from llmserve.records import read_jsonl
from llmserve.tune.journal import RESULTS, Journal
from llmserve.tune.objective import make_objective
from llmserve.tune.report import BEST_ENV, BEST_JSON, PLOT, TABLE, write_outputs


def trial(number: int, score: float, tps: float, status: str = "ok",
          params: dict[str, str] | None = None) -> dict[str, Any]:
    params = params if params is not None else {"MAX_NUM_SEQS": str(number)}
    figures = {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
    record: dict[str, Any] = {
        "key": f"k{number}", "number": number, "status": status, "default": not params,
        "params": params, "settings": {"ENFORCE_EAGER": "1", **params},
        "reason": None if status == "ok" else "server exited with code 1",
    }
    if status == "ok":
        record["score"] = {"cjk": {**figures, "mean": score}, "compat": {**figures, "mean": 0.1}}
        record["tps"] = {"engine": {**figures, "mean": tps, "std": 2.0},
                         "wall": {**figures, "mean": tps / 2}}
    return record


def test_torn_last_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"key": "a", "status": "ok"})
    path = tmp_path / RESULTS
    with path.open("a") as file:
        file.write('{"key": "b", "sta')  # a crash in the middle of writing trial b
    assert list(journal.records()) == ["a"]
    journal.append({"key": "b", "status": "ok"})
    assert [r["key"] for r in read_jsonl(path)] == ["a", "b"]
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(LlmserveError, match=f"{RESULTS}:2: not a JSON record"):
        journal.records()
    path.write_text('{"key": "a"}\n{"status": "ok"}\n')
    with pytest.raises(LlmserveError, match=f"{RESULTS}:2: a record without a trial key"):
        journal.records()


def test_meta_must_match_and_folder_is_locked(tmp_path: Path) -> None:
    Journal(tmp_path).check_meta({"limit": 40, "repeats": 1})
    Journal(tmp_path).check_meta({"limit": 40, "repeats": 1})
    with pytest.raises(LlmserveError, match="measured with limit=40, not 20"):
        Journal(tmp_path).check_meta({"limit": 20, "repeats": 1})
    first = Journal(tmp_path)
    first.lock()
    with pytest.raises(LlmserveError, match=f"another auto_tune \\(pid {os.getpid()}\\)"):
        Journal(tmp_path).lock()
    first.unlock()
    Journal(tmp_path).lock()


def test_status_is_replaced_whole(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write_status({"state": "running", "current": {"number": 1}})
    journal.write_status({"state": "done", "current": None})
    assert journal.read_status() == {"state": "done", "current": None}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary left


def test_objective_floor_best_and_front() -> None:
    records = [trial(1, 0.30, 100.0, params={}), trial(2, 0.29, 150.0), trial(3, 0.20, 300.0),
               trial(4, 0.31, 90.0), trial(5, 0.0, 0.0, status="failed")]
    objective = make_objective("cjk", "engine", None, 0.95, records[0])
    assert objective.floor == pytest.approx(0.285)
    best = objective.best(records)
    assert best is not None and best["number"] == 2  # #3 is faster but below the floor
    assert [r["number"] for r in objective.pareto(records)] == [4, 1, 2, 3]
    strict = make_objective("cjk", "engine", 0.35, 0.95, records[0])
    assert strict.best(records) is None
    no_default = make_objective("cjk", "engine", None, 0.95, records[4])
    assert no_default.floor is None and no_default.best(records) is None


def test_outputs_best_env_reproduces_the_trial(tmp_path: Path) -> None:
    records = [trial(1, 0.30, 100.0, params={}),
               trial(2, 0.30, 150.0, params={"MAX_NUM_SEQS": "32",
                                             "STOP_STRINGS": '["\\n\\n", "Q:"]'}),
               trial(3, 0.0, 0.0, status="failed")]
    objective = make_objective("cjk", "engine", None, 0.95, records[0])
    best = write_outputs(tmp_path, records, objective, {"limit": 40})
    assert best is not None and best["number"] == 2
    summary = json.loads((tmp_path / BEST_JSON).read_text())
    assert summary["best"]["tokens_per_s"] == 150.0 and summary["default"]["score"] == 0.30
    assert summary["speedup_vs_default"] == pytest.approx(1.5)
    assert summary["trials"] == {"ok": 2, "failed": 1, "timeout": 0}
    assert (tmp_path / PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / TABLE).read_text()
    assert "BEST" in table and "server exited with code 1" in table
    # Sourced over a shell with stale settings, the file leaves exactly the trial's settings.
    stale = {**os.environ, "MAX_NUM_SEQS": "1", "MODEL_ID": "some/model", "PORT": "8123"}
    shown = subprocess.run(["bash", "-c", f"source {tmp_path / BEST_ENV} && env -0"],
                           env=stale, capture_output=True, text=True, check=True).stdout
    env = dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)
    assert env["MAX_NUM_SEQS"] == "32" and env["ENFORCE_EAGER"] == "1"
    assert env["STOP_STRINGS"] == '["\\n\\n", "Q:"]'
    assert "MODEL_ID" not in env and env["PORT"] == "8123"  # where to serve stays the user's
    assert set(env) & set(defaults()) == {"MAX_NUM_SEQS", "ENFORCE_EAGER", "STOP_STRINGS",
                                          "PORT"}
    # No trial above the floor: no best.env left to be sourced by mistake.
    write_outputs(tmp_path, records, make_objective("cjk", "engine", 0.9, 0.95, None), {})
    assert not (tmp_path / BEST_ENV).exists()


def test_settings_in_the_shell_do_not_leak_into_trials() -> None:
    env, dropped = without_settings({"MAX_NUM_SEQS": "3", "model_dir": "/x", "PATH": "/bin",
                                     "VLLM_CPU_KVCACHE_SPACE": "4"})
    assert env == {"PATH": "/bin", "VLLM_CPU_KVCACHE_SPACE": "4"}
    assert dropped == ["MAX_NUM_SEQS", "model_dir"]
