"""The record: atomic JSON after every figure, ratios and targets, markdown and chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmserve.bench.chart import draw
from llmserve.bench.cli import main
from llmserve.bench.record import Record, markdown, resume_mismatch
from llmserve.bench.stats import LatencyRun, ThroughputRun, summarize_latency, summarize_throughput

HEADER = {
    "started_at": "2026-01-01T00:00:00+00:00",
    "hardware": {"cpu": "Test CPU", "usable_cpus": 2, "memory_gib": 8, "gpus": []},
    "packages": {"vllm": "0.0"},
    "engine_kwargs": {"dtype": "auto", "max_num_seqs": 8},
    "workload": {
        "throughput": {"num_prompts": 4, "source": "synthetic", "input_len": 64,
                       "output_len": 8, "concurrency": 4, "repeats": 3, "ignore_eos": True},
        "latency": {"batch_size": 1, "input_len": 64, "output_len": 8, "iterations": 3},
    },
}


def throughput(tokens_per_s: list[float]) -> dict:
    return summarize_throughput([ThroughputRun(100 / t, 100, 4) for t in tokens_per_s])


def latency() -> dict:
    return summarize_latency([LatencyRun(0.5 + i / 100, 0.05, 8, 1) for i in range(3)])


@pytest.fixture
def record(tmp_path: Path) -> Record:
    return Record(tmp_path / "record.json", dict(HEADER))


def saved(record: Record) -> dict:
    return json.loads(record.path.read_text())


def test_record_is_on_disk_from_the_start(record: Record) -> None:
    data = saved(record)
    assert data["status"] == "running"
    assert data["throughput"] == {} and data["targets"] == []


def test_each_figure_is_saved_as_it_arrives(record: Record) -> None:
    record.throughput("vllm-offline", throughput([100, 110, 90]))
    assert saved(record)["ratios"] == {"vllm-offline": 1.0}
    record.throughput("predict-list", throughput([99, 98, 97]))
    data = saved(record)
    assert data["ratios"]["predict-list"] == pytest.approx(0.98)
    assert data["targets"] == [{"system": "predict-list", "versus": "vllm-offline",
                                "min": 0.97, "ratio": pytest.approx(0.98), "met": True}]
    record.system("predict", error="boom", peak_rss_mb=12.0)
    record.system("predict", start_seconds=3.0)  # facts accumulate
    assert saved(record)["systems"]["predict"] == {"error": "boom", "peak_rss_mb": 12.0,
                                                   "start_seconds": 3.0}
    assert not list(record.path.parent.glob("*.partial"))


def test_targets_missed_are_reported_not_raised(record: Record) -> None:
    record.throughput("vllm-offline", throughput([100, 100, 100]))
    record.throughput("predict-concurrent", throughput([80, 85, 88]))
    record.throughput("vllm-serve", throughput([90, 90, 90]))
    targets = {(t["system"], t["versus"]): t for t in saved(record)["targets"]}
    assert targets[("predict-concurrent", "vllm-offline")]["met"] is False
    assert targets[("predict-concurrent", "vllm-serve")]["ratio"] == pytest.approx(85 / 90)


def test_ratios_without_the_reference_are_none(record: Record) -> None:
    record.throughput("transformers", throughput([10, 11, 12]))
    assert saved(record)["ratios"] == {"transformers": None}
    assert "| transformers" in markdown(saved(record))


def test_markdown_tables(record: Record) -> None:
    record.throughput("vllm-offline", throughput([100, 110, 90]))
    record.throughput("predict-list", throughput([99, 98, 97]))
    record.latency("predict", latency())
    record.system("predict", weights_mb=256.4, peak_rss_mb=2048.0)
    record.system("vllm-serve", error="ServerFailed: exited")
    text = markdown(saved(record))
    assert "| vllm-offline (vLLM offline LLM.generate) | 100.0 [90.0–110.0] |" in text
    assert "| 0.980 |" in text
    assert "| predict (/predict) | 50.0 [50.0–50.0] |" in text
    assert "| 256 | 2048 | – |" in text
    assert "| predict-list / vllm-offline | ≥ 0.97 | 0.980 | met |" in text
    assert "- vllm-serve: ServerFailed: exited" in text


def test_chart_is_a_png(record: Record, tmp_path: Path) -> None:
    assert draw(saved(record), tmp_path / "empty.png") is None  # nothing to draw yet
    record.throughput("vllm-offline", throughput([100, 110, 90]))
    record.throughput("predict-list", throughput([99, 98, 97]))
    record.latency("predict", latency())
    path = draw(saved(record), tmp_path / "chart.png")
    assert path is not None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_an_existing_record(record: Record, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    record.throughput("vllm-offline", throughput([100, 110, 90]))
    assert main(["--report", str(record.path)]) == 0
    assert "| vllm-offline" in capsys.readouterr().out
    assert record.path.with_name("results.md").exists()
    assert record.path.with_name("chart.png").exists()


def test_resume_keeps_figures_and_adds_systems(tmp_path: Path) -> None:
    first = Record(tmp_path / "record.json", {**HEADER, "config": {"systems": ["vllm-offline"]}})
    first.system("vllm-offline", start_seconds=1.0)
    first.throughput("vllm-offline", throughput([100, 100, 100]))
    first.latency("vllm-offline", latency())
    phases = ("throughput", "latency")
    assert first.complete("vllm-offline", ("vllm-offline",), phases)
    assert not first.complete("predict", ("predict-list",), phases)

    header = {**HEADER, "started_at": "later", "config": {"systems": ["vllm-serve"]}}
    data = json.loads(first.path.read_text())
    assert resume_mismatch(data, header) is None
    again = Record(first.path, header, data)
    again.throughput("vllm-serve", throughput([90, 90, 90]))
    data = saved(again)
    assert data["config"]["systems"] == ["vllm-offline", "vllm-serve"]
    assert data["ratios"]["vllm-serve"] == pytest.approx(0.9)  # against the earlier reference
    assert data["started_at"] == HEADER["started_at"]
    assert data["resumed"][0]["started_at"] == "later"


def test_resume_shows_every_replica_count_swept(tmp_path: Path) -> None:
    def scale(sweep: list[int]) -> dict:
        return {"gpus": 1, "engine_replicas": 1, "replica_sweep": sweep,
                "tensor_parallel_size": 1, "pipeline_parallel_size": 1, "data_parallel_size": 1}

    first = Record(tmp_path / "record.json",
                   {**HEADER, "config": {"systems": ["predict-list"]}, "scale": scale([1, 2])})
    first.throughput("predict-list", throughput([100, 100, 100]))
    header = {**HEADER, "config": {"systems": ["predict-list"]}, "scale": scale([3])}
    again = Record(first.path, header, json.loads(first.path.read_text()))
    again.throughput("predict-list@3", throughput([90, 90, 90]))
    data = saved(again)
    assert data["scale"]["replica_sweep"] == [1, 2, 3]
    assert "engine replicas /predict swept over 1, 2, 3" in markdown(data)


def test_resume_refuses_other_settings() -> None:
    data = json.loads(json.dumps({**HEADER, "sampling": {"temperature": 0.0}}))
    assert resume_mismatch(data, {**HEADER, "sampling": {"temperature": 0.5}}) == "sampling"


def test_failed_system_is_measured_again(record: Record) -> None:
    record.system("predict", error="boom")
    record.throughput("predict-list", throughput([1, 1, 1]))
    assert not record.complete("predict", ("predict-list",), ("throughput",))
    record.reset("predict", ("predict-list", "predict-concurrent"))
    assert "predict" not in record.data["systems"]
    assert "predict-list" not in saved(record)["throughput"]
    record.finish()
    assert saved(record)["status"] == "complete"
    record.system("vllm-serve", error="boom")
    record.finish()
    assert saved(record)["status"] == "failed"


def test_resume_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--resume"]) == 2
