"""The roofline: the CPU's limits, served weight bytes, and each row's fraction of its limit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from llmserve.bench import roofline
from llmserve.bench.memory import checkpoint_params, served_weight_bytes
from llmserve.bench.record import Record, markdown
from llmserve.bench.roofline import latency_floors, measure_machine, throughput_limit
from llmserve.bench.stats import LatencyRun, ThroughputRun, summarize_latency, summarize_throughput

# 1 GB/s and 1 GFLOP/s: every floor below is easy to work out by hand.
MACHINE = {"triad_gb_s": 1.0, "gemm_gflop_s": {"float32": 1.0, "bfloat16": 4.0}}


def test_decode_reads_the_weights_once_a_step_for_the_whole_batch() -> None:
    work = {"num_prompts": 8, "prompt_tokens": 0, "output_len": 10, "concurrency": 1}
    one = throughput_limit(MACHINE, 1e8, 1e6, work, "float32")
    assert one == {"tokens_per_s": pytest.approx(10.0), "binds": "bandwidth"}  # 0.1 s a step
    eight = throughput_limit(MACHINE, 1e8, 1e6, {**work, "concurrency": 8}, "float32")
    assert eight["tokens_per_s"] == pytest.approx(80.0)
    more = throughput_limit(MACHINE, 1e8, 1e6, {**work, "concurrency": 64}, "float32")
    assert more["tokens_per_s"] == pytest.approx(80.0)  # no more in flight than prompts


def test_prefill_is_compute_bound_and_adds_to_decode() -> None:
    # 8 prompts x 1000 tokens x 2 x 1e6 FLOPs = 16 s at 1 GFLOP/s; decode 8 x 10 x 0.001 s.
    work = {"num_prompts": 8, "prompt_tokens": 1000, "output_len": 10, "concurrency": 1}
    limit = throughput_limit(MACHINE, 1e6, 1e6, work, "float32")
    assert limit["binds"] == "compute"
    assert limit["tokens_per_s"] == pytest.approx(80 / (16 + 0.08))
    faster = throughput_limit(MACHINE, 1e6, 1e6, work, "bfloat16")  # its own GEMM rate
    assert faster["tokens_per_s"] == pytest.approx(80 / (4 + 0.08))
    floors = latency_floors(MACHINE, 1e8, 1e6, 2, 100, None)
    assert floors == {"ttft_ms": pytest.approx(400.0), "tpot_ms": pytest.approx(100.0)}


def test_served_weight_bytes_follow_the_engines_dtype(tmp_path: Path) -> None:
    save_file({"a": np.zeros((4, 8), dtype=np.float16), "b": np.zeros(3, dtype=np.float32)},
              str(tmp_path / "model.safetensors"))
    assert served_weight_bytes(tmp_path, "float32") == (32 + 3) * 4
    assert served_weight_bytes(tmp_path, "bfloat16") == (32 + 3) * 2
    assert served_weight_bytes(tmp_path, "auto") == 32 * 2 + 3 * 4  # as stored
    assert checkpoint_params(tmp_path) == 35
    packed = tmp_path / "packed"
    packed.mkdir()
    save_file({"q": np.zeros(16, dtype=np.int8), "s": np.zeros(2, dtype=np.float16)},
              str(packed / "model.safetensors"))
    assert served_weight_bytes(packed, "float32") == 16 + 2 * 4  # packed ints as stored
    assert checkpoint_params(packed) is None  # packed tensors do not count parameters


def test_the_machine_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small sizes: the figures of a test are not measurements, only their shape is checked.
    monkeypatch.setattr(roofline, "TRIAD_ELEMENTS", 1 << 20)
    monkeypatch.setattr(roofline, "GEMM_SIZE", 256)
    machine = measure_machine([])
    assert machine["triad_gb_s"] > 0.1 and machine["gemm_gflop_s"]["float32"] > 0.1
    assert "bfloat16" not in machine["gemm_gflop_s"]  # only where the CPU has native bf16
    assert json.loads(json.dumps(machine)) == machine


def test_a_cpu_record_shows_each_rows_fraction(tmp_path: Path) -> None:
    header = {
        "hardware": {"cpu": "Test CPU", "gpus": []},
        "engine_kwargs": {"dtype": "float32", "max_num_seqs": 4},
        "roofline": MACHINE, "model_params": 1e6,
        "workload": {
            "throughput": {"num_prompts": 8, "input_len": 0, "output_len": 10,
                           "concurrency": 2, "repeats": 1},
            "latency": {"batch_size": 1, "input_len": 100, "output_len": 10, "iterations": 1},
        },
    }  # fmt: skip
    record = Record(tmp_path / "record.json", header)
    weights_mb = 1e8 / 2**20  # 0.1 s a step at 1 GB/s
    record.system("vllm-offline", weights_mb=weights_mb, batch_limit=4)
    record.system("predict", weights_mb=weights_mb)
    record.system("llamacpp", weights_mb=weights_mb, batch_limit=1)
    run = [ThroughputRun(8.0, 80, 8)]  # 10 tok/s
    record.throughput("vllm-offline", summarize_throughput(run), "vllm-offline")
    record.throughput("predict-concurrent", summarize_throughput(run), "predict")
    record.throughput("llamacpp-predict-list", summarize_throughput(run), "llamacpp")
    record.throughput("transformers", summarize_throughput(run))  # no system: no roofline
    record.latency("predict", summarize_latency([LatencyRun(1.1, 0.4, 10, 1)]))
    data = json.loads(record.path.read_text())
    limits = data["roofline_limits"]["throughput"]
    # offline puts all 8 prompts in (max_num_seqs 4 a step), concurrent 2, llama.cpp 1 slot.
    assert limits["vllm-offline"]["tokens_per_s"] == pytest.approx(40.0)
    assert limits["predict-concurrent"]["fraction"] == pytest.approx(0.5)
    assert limits["llamacpp-predict-list"]["fraction"] == pytest.approx(1.0)
    assert "transformers" not in limits
    latency = data["roofline_limits"]["latency"]["predict"]
    assert latency["ttft_fraction"] == pytest.approx(0.5)  # 200 ms floor of 400 ms
    assert latency["tpot_fraction"] == pytest.approx(100 / ((1.1 - 0.4) / 9 * 1e3))
    text = markdown(data)
    assert "- roofline: memory 1.0 GB/s (triad), GEMM GFLOP/s float32 1, bfloat16 4" in text
    assert "| 0.50 of 20 (bandwidth) |" in text
    assert "| – |" in text  # transformers' row
