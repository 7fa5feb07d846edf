"""What the settings hand to vLLM (llmserve/engines/vllm/args.py): the parallel sizes and
executor backend as given, the memory fraction split over ENGINE_REPLICAS, and the batching
limits left to vLLM on a GPU but set on CPU. No engine starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmserve.engines.vllm import args
from llmserve.settings import Settings


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text('{"torch_dtype": "bfloat16"}')
    return tmp_path


def test_parallel_sizes_and_backend_pass_through(model_dir: Path) -> None:
    settings = Settings(
        tensor_parallel_size=2, pipeline_parallel_size=3, data_parallel_size=4,
        distributed_executor_backend="ray",
    )  # fmt: skip
    kwargs = args.engine_kwargs(settings, model_dir)
    assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"]) == (2, 3)
    assert kwargs["data_parallel_size"] == 4
    assert kwargs["distributed_executor_backend"] == "ray"
    assert args.engine_kwargs(Settings(), model_dir)["distributed_executor_backend"] is None


def test_replicas_split_the_memory_fraction(model_dir: Path) -> None:
    one = args.engine_kwargs(Settings(gpu_memory_utilization=0.9), model_dir)
    three = args.engine_kwargs(
        Settings(gpu_memory_utilization=0.9, engine_replicas=3), model_dir
    )
    assert three["gpu_memory_utilization"] == pytest.approx(one["gpu_memory_utilization"] / 3)


def test_batching_limits_are_vllms_on_a_gpu_and_ours_on_cpu(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(args, "device_type", lambda: "cuda")
    gpu = args.engine_kwargs(Settings(), model_dir)
    assert "max_num_seqs" not in gpu and "max_num_batched_tokens" not in gpu
    assert args.engine_kwargs(Settings(max_num_seqs=64), model_dir)["max_num_seqs"] == 64
    monkeypatch.setattr(args, "device_type", lambda: "cpu")
    cpu = args.engine_kwargs(Settings(), model_dir)
    assert cpu["max_num_seqs"] == args.CPU_DEFAULT_MAX_NUM_SEQS
