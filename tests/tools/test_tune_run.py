"""Real trials: real servers (llmserve serve), the real judge; interrupted mid-trial, resumed."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmserve.harness import launch
from llmserve.records import read_jsonl
from llmserve.tune.journal import STATUS
from llmserve.tune.report import BEST_ENV, BEST_JSON, PLOT
from llmserve.tune.space import parse_space
from llmserve.tune.trial import MARKER_VAR, Limits, Measure
from llmserve.tune.tuner import TuneConfig, Tuner
from tests.conftest import write_chat_jsonl

QA = [
    ("tune", "What is 2 + 2?", "2 + 2 = 4."),
    ("tune", "一年有几个季节？", "一年有四个季节：春、夏、秋、冬。"),
    ("tune", "Name a primary color.", "Red is a primary color."),
    ("test", "What is the capital of France?", "The capital of France is Paris."),
    ("test", "水的化学式是什么？", "水的化学式是H2O。"),
]
# Small and quick, as in conftest.TEST_ENV, but given the way a user would: as --env.
SETS = {"ENFORCE_EAGER": "1", "DTYPE": "float32", "MAX_MODEL_LEN": "1024",
        "MAX_NEW_TOKENS": "16", "GPU_MEMORY_UTILIZATION": "0.2"}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_chat_jsonl(tmp_path / "data.jsonl", QA)


@pytest.fixture
def busy_port() -> Iterator[socket.socket]:
    """A port somebody else listens on (this test): the tuner must leave it alone."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def marked_processes(out: Path) -> list[int]:
    wanted = b"\0" + f"{MARKER_VAR}={out.resolve()}".encode() + b"\0"
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if wanted in b"\0" + (proc / "environ").read_bytes() + b"\0":
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.engine
def test_interrupted_search_resumes_and_confirms(
    data: Path, tmp_path: Path, busy_port: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "tune"
    broken = tmp_path / "broken-checkpoint"  # a directory vLLM cannot load: a failing trial
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    space = parse_space({"parameters": {"MODEL_DIR": [None, str(broken)],
                                        "MAX_NUM_SEQS": [4]}}, "test-space", SETS)
    config = TuneConfig(
        out=out, measure=Measure(data=data, split="tune", limit=2, warmup=1),
        limits=Limits(start_timeout=600, trial_timeout=900), strategy="grid", floor=0.0,
        confirm_limit=2, progress=False)
    events: list[tuple[str, dict[str, Any]]] = []

    def ctrl_c_in_trial_2(name: str, event: dict[str, Any]) -> None:
        events.append((name, event))
        if name == "item" and event["number"] == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, while trial 2 is being judged

    with pytest.raises(KeyboardInterrupt):
        Tuner(config, space, on_event=ctrl_c_in_trial_2).run()
    first = read_jsonl(out / "tune_results.jsonl")
    assert [(r["number"], r["status"], r["params"]) for r in first] == [(1, "ok", {})]
    assert first[0]["repeats"][0]["items"] == 2 and first[0]["tps"]["engine"]["mean"] > 0
    status = json.loads((out / STATUS).read_text())
    assert status["state"] == "interrupted" and status["current"]["number"] == 2
    served = [e["pid"] for name, e in events if name == "phase" and e["phase"] == "serving"]
    assert len(served) == 2
    assert marked_processes(out) == []  # the interrupted trial's server was stopped
    with pytest.raises(ProcessLookupError):
        os.kill(served[1], 0)

    # The rerun skips trial 1, redoes trial 2 (its first port is taken and gets passed over),
    # then runs trial 3, which fails and is recorded with its reason.
    taken = busy_port.getsockname()[1]
    ports = iter([taken])
    real_free_port = launch.free_port
    monkeypatch.setattr(launch, "free_port",
                        lambda host="127.0.0.1": next(ports, None) or real_free_port(host))
    events.clear()
    outcome = Tuner(config, space, on_event=lambda name, e: events.append((name, e))).run()
    records = read_jsonl(out / "tune_results.jsonl")
    assert [(r["number"], r["status"]) for r in records] == [(1, "ok"), (2, "ok"),
                                                             (3, "failed")]
    assert records[2]["params"]["MODEL_DIR"] == str(broken)
    assert "engine failed to start" in records[2]["reason"]
    assert records[0] == first[0]
    phases = [e for name, e in events if name == "phase"]
    assert phases[0]["number"] == 2  # nothing of trial 1 ran again before the confirmations
    assert records[1]["port"] != taken
    assert "address already in use" in (Path(records[1]["dir"]) / "server.log").read_text()
    busy_port.settimeout(5)
    with socket.create_connection(("127.0.0.1", taken), timeout=5):
        pass  # its owner (this test) still listens there

    # Best and default were confirmed on the test split; the outputs are all there.
    assert outcome.best is not None and outcome.default is not None
    for record in (outcome.best, outcome.default):
        assert record["test"]["status"] == "ok"
        assert record["test"]["measure"]["split"] == "test"
    summary = json.loads((out / BEST_JSON).read_text())
    assert summary["best"]["test"]["score"]["cjk"]["mean"] >= 0
    env_text = (out / BEST_ENV).read_text()
    assert all(f"export {k}={v}\n" in env_text for k, v in outcome.best["settings"].items())
    assert (out / PLOT).stat().st_size > 0
    assert json.loads((out / STATUS).read_text())["state"] == "done"
    assert marked_processes(out) == []
