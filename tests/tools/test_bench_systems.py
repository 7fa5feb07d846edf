"""System start/stop with real processes: clean-up on failure, worker protocol, memory."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from llmserve.bench.cli import build_parser, config_from
from llmserve.bench.config import TRANSFORMERS
from llmserve.bench.memory import PeakMemory, checkpoint_weight_bytes, tree_rss
from llmserve.bench.record import Record
from llmserve.bench.runner import Plan, Runner
from llmserve.bench.systems import Context, Transformers, WorkerSystem
from llmserve.bench.workload import PromptMaker
from llmserve.engines.render import PromptRenderer
from llmserve.errors import LlmserveError, ModelNotFound
from llmserve.model import resolve_model_dir
from llmserve.settings import Settings


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def context(tmp_path: Path, model_dir: Path = Path("/nonexistent")) -> Context:
    return Context(
        model_dir=model_dir, engine_kwargs={"model": str(model_dir)},
        sampling={"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
                  "ignore_eos": True},
        dtype="auto", env={**os.environ, "HF_HUB_OFFLINE": "1"}, run_dir=tmp_path,
        concurrency=2, hf_batch_size=2, start_timeout=120,
    )


class Unknown(WorkerSystem):
    """A worker asked for an engine kind that does not exist: it exits at once."""

    name = "unknown"
    rows = ("unknown",)
    kind = "no-such-engine"


def test_failed_start_is_recorded_and_leaves_nothing_running(tmp_path: Path) -> None:
    system = Unknown(context(tmp_path))
    record = Record(tmp_path / "record.json", {})
    config = config_from(build_parser().parse_args(["--quick", "--out", str(tmp_path)]))
    runner = Runner(config, Console(file=io.StringIO()))
    ok = asyncio.run(runner.measure(system, Plan([], [], 0), record))
    assert ok is False
    facts = record.data["systems"]["unknown"]
    assert "exited with code" in facts["error"]
    assert "KeyError" in Path(facts["log"]).read_text()  # the log explains the failure
    assert system.process is not None and not group_alive(system.process.pid)
    assert system.conn is None


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        return resolve_model_dir(Settings())
    except ModelNotFound as error:
        pytest.skip(str(error))


def test_transformers_worker_real_run(tmp_path: Path, model_dir: Path) -> None:
    """A short real run through the worker protocol, then a stop that ends the group."""
    from transformers import AutoTokenizer

    maker = PromptMaker(PromptRenderer(AutoTokenizer.from_pretrained(model_dir), None, False),
                        max_model_len=512, max_new_tokens=4)
    batch = maker.synthetic(3, 40, seed=0)

    async def scenario() -> tuple[int, list[int], int | None, int]:
        system = Transformers(context(tmp_path, model_dir))
        async with system:
            pgid = system.pid
            assert pgid is not None and group_alive(pgid)
            run = await system.throughput(TRANSFORMERS, batch)
            latency = await system.latency(batch, maker.synthetic(3, 40, seed=1))
            weights = await system.weight_bytes()
            with pytest.raises(LlmserveError, match="unknown op"):
                await system.call({"op": "nope"})
        return run.output_tokens, [latency.output_tokens, latency.batch_size], weights, pgid

    tokens, latency, weights, pgid = asyncio.run(scenario())
    assert tokens == 3 * 4  # ignore_eos: exactly max_tokens each
    assert latency == [12, 3]
    assert weights == checkpoint_weight_bytes(model_dir)  # bf16 parameters = stored tensors
    assert not group_alive(pgid)


def test_peak_memory_of_a_process_tree() -> None:
    # A child holding ~64 MB until we close its stdin: no sleeping to synchronize.
    code = "import sys; block = bytearray(64 << 20); print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with PeakMemory(pid_of=lambda: child.pid) as memory:
            memory.sample()
        assert memory.peak_rss >= 64 << 20
        assert tree_rss(os.getpid()) >= memory.peak_rss  # our tree includes the child
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert tree_rss(child.pid) == 0
    assert PeakMemory(pid_of=lambda: None).to_json() == {"peak_rss_mb": None,
                                                         "peak_gpu_mb": None}


def test_checkpoint_weight_bytes(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"a": np.zeros((4, 8), dtype=np.float16), "b": np.zeros(3, dtype=np.float32)},
              str(tmp_path / "model.safetensors"))
    assert checkpoint_weight_bytes(tmp_path) == 4 * 8 * 2 + 3 * 4
    assert checkpoint_weight_bytes(tmp_path / "nothing") is None

