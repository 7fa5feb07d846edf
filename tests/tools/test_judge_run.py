"""Judge runs against the real server: scores and speed, modes, resume, gates, faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmserve.errors import ExitCode
from llmserve.judge.cli import main
from llmserve.judge.runner import DETAILS, SUMMARY, RunConfig, Runner
from llmserve.process import free_port
from tests.conftest import write_chat_jsonl

QA = [
    ("tune", "What is 2 + 2?", "2 + 2 = 4."),
    ("test", "What is the capital of France?", "The capital of France is Paris."),
    ("test", "中国的首都是哪里？", "中国的首都是北京。"),
    ("tune", "一年有几个季节？", "一年有四个季节：春、夏、秋、冬。"),
    ("test", "Name a primary color.", "Red is a primary color."),
    ("test", "水的化学式是什么？", "水的化学式是H2O。"),
    ("test", "How many legs does a spider have?", "A spider has eight legs."),
]
TEST_IDS = [f"q{n}" for n, (split, _, _) in enumerate(QA) if split == "test"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_chat_jsonl(tmp_path / "data.jsonl", QA)


def details(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / DETAILS).read_text().splitlines()]


def summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / SUMMARY).read_text()))


class Stop(Exception):
    """Raised from the per-item callback to cut a run short, like Ctrl-C would."""


@pytest.mark.engine
def test_sequential_run_reports_both_scores_and_speed(server: Any, data: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["--url", server.url, "--data", str(data), "--out", str(out)]) == ExitCode.OK
    records = details(out)
    assert sorted(r["id"] for r in records) == sorted(TEST_IDS)  # the test split only
    for r in records:
        assert set(r["scores"]) == {"cjk", "compat"}
        assert r["prediction"] and r["output_tokens"] > 0 and r["latency_s"] > 0
        assert r["engine_seconds"] > 0
    result = summary(out)
    results = result["results"]
    assert results["items"] == results["requests"] == len(TEST_IDS)
    assert results["output_tokens"] == sum(r["output_tokens"] for r in records)
    assert results["tokens_per_s_wall"] > 0
    assert results["tokens_per_s_engine"] >= results["tokens_per_s_wall"]
    assert results["compat_blind_items"] == 1  # 中国的首都是北京。 (H2O is visible to it)
    assert result["run"]["mode"] == "sequential"
    assert result["run"]["tokenizer_source"] == "/info engine.model_dir"
    assert result["server"]["info"]["engine"]["model_dir"] == result["run"]["tokenizer"]


@pytest.mark.engine
@pytest.mark.parametrize(
    ("flags", "mode", "requests"),
    [(["--batch", "--batch-size", "2"], "batch", 3), (["--concurrency", "3"], "concurrent", 5)],
)
def test_batch_and_concurrent_modes(server: Any, data: Path, tmp_path: Path, flags: list[str],
                                    mode: str, requests: int) -> None:
    out = tmp_path / "run"
    argv = ["--url", server.url, "--data", str(data), "--out", str(out), *flags]
    assert main(argv) == ExitCode.OK
    assert sorted(r["id"] for r in details(out)) == sorted(TEST_IDS)
    result = summary(out)
    assert result["run"]["mode"] == mode
    assert result["results"]["requests"] == requests
    assert result["results"]["tokens_per_s_engine"] is not None


@pytest.mark.engine
def test_interrupted_run_resumes_with_every_item_once(server: Any, data: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = RunConfig(url=server.url, data=data, out=out, progress=False)
    seen: list[str] = []

    def stop_after_two(record: dict[str, Any]) -> None:
        seen.append(record["id"])
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        Runner(config, on_item=stop_after_two).run()
    assert [r["id"] for r in details(out)] == seen
    assert not (out / SUMMARY).exists()

    # Without --resume the folder is refused rather than mixed into.
    assert main(["--url", server.url, "--data", str(data), "--out", str(out)]) == ExitCode.USAGE

    assert main(["--url", server.url, "--data", str(data), "--out", str(out),
                 "--resume"]) == ExitCode.OK
    records = details(out)
    assert sorted(r["id"] for r in records) == sorted(TEST_IDS)  # every item exactly once
    assert [r["id"] for r in records[:2]] == seen  # the first session's items were kept
    assert {r["session"] for r in records} == {1, 2}
    results = summary(out)["results"]
    assert results["items"] == len(TEST_IDS) and results["sessions"] == 2


@pytest.mark.engine
def test_gates_set_the_exit_code(server: Any, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["--url", server.url, "--data", str(data), "--out", str(out), "--limit", "2"]
    assert main([*base, "--min-score", "0", "--min-tps", "0.001"]) == ExitCode.OK
    # Gating again on the finished run (--resume with nothing left) sends no requests.
    assert main([*base, "--resume", "--min-score", "1.01"]) == ExitCode.GATE_FAILED
    gated = main([*base, "--resume", "--min-tps", "1e9", "--tps-basis", "wall"])
    assert gated == ExitCode.GATE_FAILED
    gates = summary(out)["gates"]
    assert [(g["name"], g["passed"]) for g in gates] == [("tokens/s[wall]", False)]


def test_server_down_is_a_clear_error(data: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["--url", url, "--data", str(data), "--out", str(tmp_path / "r"), "--wait", "1"]
    assert main(argv) == ExitCode.SERVER
    err = capsys.readouterr().err
    assert url in err and "bash run_model.sh" in err and "judge.sh --start" in err


def test_bad_data_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n{oops\n')
    assert main(["--data", str(path), "--out", str(tmp_path / "r")]) == ExitCode.USAGE
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_defaults_are_absolute_so_any_working_directory_works() -> None:
    from llmserve.judge.cli import JUDGE_ROOT, build_parser
    from llmserve.paths import DATA_JSONL, RESULTS_ROOT

    args = build_parser().parse_args([])
    assert args.data == DATA_JSONL and DATA_JSONL.is_absolute()
    assert JUDGE_ROOT == RESULTS_ROOT / "judge" and JUDGE_ROOT.is_absolute()
