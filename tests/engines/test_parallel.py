"""Tensor and pipeline parallelism (llmserve/engines/vllm/parallel.py, llmserve/pad_heads.py).

Fast part: the head arithmetic, the start-up refusals, the per-rank CPU binding, and the padded
checkpoint's logits against the original's through transformers (real model, real files).
Real part (`engine`): `llmserve serve` with TENSOR_PARALLEL_SIZE=2 (the padded copy) and with
PIPELINE_PARALLEL_SIZE=2, two ranks on this machine's cores, answering exactly as the session's
one-rank server does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmserve.engines.vllm.parallel import (
    HeadPlan,
    UnsupportedParallelism,
    cpu_binding,
    cpu_parallel_env,
    numa_nodes,
    padded_heads,
    parallel_problem,
)
from llmserve.errors import LlmserveError
from llmserve.model import served_model_dir
from llmserve.pad_heads import main as pad_main
from llmserve.pad_heads import pad_checkpoint, read_plan
from llmserve.process import ServerFailed
from llmserve.settings import Settings
from tests.conftest import Server, start_server

SMOLLM2 = {"num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30}
PROMPTS = ["What is the capital of France?", "Name three colours.", "1, 2, 3, what comes next?"]


@pytest.mark.parametrize(
    ("heads", "kv_heads", "tp", "padded"),
    [
        (9, 3, 2, (12, 4)),  # SmolLM2-135M: one zero KV group of 3 query heads
        (9, 3, 4, (12, 4)),
        (14, 2, 4, (28, 4)),  # Qwen2.5-0.5B at TP=4: groups of 7
        (9, 3, 3, (9, 3)),  # divides already
        (16, 2, 4, (16, 2)),  # fewer KV heads than ranks: vLLM copies them
    ],
)
def test_padding_appends_whole_kv_groups(
    heads: int, kv_heads: int, tp: int, padded: tuple[int, int]
) -> None:
    plan = padded_heads(heads, kv_heads, tp)
    assert (plan.padded_heads, plan.padded_kv_heads) == padded
    assert plan.padded_heads // plan.padded_kv_heads == heads // kv_heads  # same grouping


def test_a_tp_size_that_does_not_divide_the_heads_is_refused_with_the_fix() -> None:
    problem = parallel_problem(SMOLLM2, tp=2, pp=1, on_cpu=True, eager=False)
    assert problem is not None
    assert "TENSOR_PARALLEL_SIZE=2" in problem and "9 attention heads" in problem
    assert "llmserve pad-heads --tp 2" in problem and "12 (4 KV)" in problem
    assert parallel_problem(SMOLLM2, tp=3, pp=1, on_cpu=True, eager=True) is None


def test_eager_pipeline_parallelism_is_refused_on_cpu_only() -> None:
    problem = parallel_problem(SMOLLM2, tp=1, pp=2, on_cpu=True, eager=True)
    assert problem is not None and "ENFORCE_EAGER" in problem
    assert parallel_problem(SMOLLM2, tp=1, pp=2, on_cpu=False, eager=True) is None
    assert parallel_problem(SMOLLM2, tp=1, pp=2, on_cpu=True, eager=False) is None
    assert "31" in (parallel_problem(SMOLLM2, tp=1, pp=31, on_cpu=False, eager=False) or "")


def test_ranks_get_equal_contiguous_core_groups() -> None:
    assert cpu_binding(2, [0, 1]) == "0|1"
    assert cpu_binding(2, list(range(8))) == "0,1,2,3|4,5,6,7"
    assert cpu_binding(3, [0, 1, 2, 3]) == "0|1|2"
    with pytest.raises(UnsupportedParallelism, match="3 CPU ranks need a core each; this "
                       "process may use 2"):
        cpu_binding(3, [0, 1])


def test_the_binding_is_set_only_for_several_ranks_and_never_over_the_users(
    tmp_path: Path,
) -> None:
    two = Settings(model_dir=tmp_path, tensor_parallel_size=2)
    assert cpu_parallel_env(Settings(model_dir=tmp_path), {}) == {}
    assert cpu_parallel_env(two, {"VLLM_CPU_OMP_THREADS_BIND": "0-1|2-3"}) == {}
    env = cpu_parallel_env(two, {})
    if env:  # one NUMA node (every 2-core machine of this kind): a core group per rank
        assert env["VLLM_CPU_OMP_THREADS_BIND"].count("|") == 1
    # Data-parallel engines' ranks are in the same list: TP=2 x DP=2 is 4 groups.
    four = Settings(model_dir=tmp_path, tensor_parallel_size=2, data_parallel_size=2)
    try:
        env = cpu_parallel_env(four, {})
    except UnsupportedParallelism as error:  # fewer than 4 cores
        assert "= 4 CPU ranks" in str(error)
    else:
        assert not env or env["VLLM_CPU_OMP_THREADS_BIND"].count("|") == 3


def test_numa_nodes_count_only_nodes_with_our_cores(tmp_path: Path) -> None:
    for node, cpus in (("node0", "0-3"), ("node1", "4-7,12")):
        (tmp_path / node).mkdir()
        (tmp_path / node / "cpulist").write_text(cpus + "\n")
    assert numa_nodes({0, 1}, tmp_path) == 1
    assert numa_nodes({3, 12}, tmp_path) == 2
    assert numa_nodes({0}, tmp_path / "missing") == 1


def write_config(directory: Path, **config: object) -> Path:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_architectures_without_a_head_dim_and_quantized_checkpoints_are_refused(
    tmp_path: Path,
) -> None:
    qwen2 = write_config(tmp_path / "qwen2", architectures=["Qwen2ForCausalLM"],
                         num_attention_heads=14, num_key_value_heads=2, hidden_size=896)
    with pytest.raises(LlmserveError, match="Qwen2ForCausalLM cannot take padded heads"):
        read_plan(qwen2, 4)
    awq = write_config(tmp_path / "awq", architectures=["LlamaForCausalLM"],
                       num_attention_heads=9, num_key_value_heads=3, hidden_size=576,
                       quantization_config={"quant_method": "awq"})
    with pytest.raises(LlmserveError, match="quantized"):
        read_plan(awq, 2)
    with pytest.raises(LlmserveError, match=r"no config\.json"):
        read_plan(tmp_path / "none", 2)


def test_the_cli_names_a_bad_tp_and_a_missing_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pad_main([str(tmp_path / "out"), "--tp", "1"]) == 2
    assert "--tp 1" in capsys.readouterr().err
    assert pad_main([str(tmp_path / "out"), "--tp", "2", "--model", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def padded_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model padded for TP=2 (9/3 -> 12/4 heads)."""
    out = tmp_path_factory.mktemp("padded") / "smollm2-tp2"
    plan = pad_checkpoint(served_model_dir(), out, 2)
    assert plan == HeadPlan(9, 3, 12, 4)
    return out


def test_the_padded_copy_computes_the_same_logits(padded_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original = served_model_dir()
    config = json.loads((padded_model / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (12, 4)
    assert (padded_model / "chat_template.jinja").is_file()
    assert not (padded_model / ".prepared.json").exists()
    ids = AutoTokenizer.from_pretrained(original)(PROMPTS[0], return_tensors="pt").input_ids
    logits = []
    for directory in (original, padded_model):
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
        with torch.no_grad():
            logits.append(model(ids).logits)
    assert logits[0].shape == logits[1].shape
    assert torch.allclose(logits[0], logits[1], atol=1e-4), (logits[0] - logits[1]).abs().max()


def answers(server: Server, prompts: list[str]) -> list[str]:
    with server.client() as client:
        response = client.post("/predict", json={"prompt": prompts})
    assert response.status_code == 200, response.text
    return list(response.json()["response"])


def layout(server: Server) -> dict[str, int]:
    with server.client() as client:
        return dict(client.get("/info").json()["engine"]["parallel"])


@pytest.mark.engine
@pytest.mark.parametrize("ranks", ["tensor", "pipeline"])
def test_two_ranks_on_cpu_answer_as_one(
    ranks: str, server: Server, padded_model: Path, tmp_path: Path
) -> None:
    expected = answers(server, PROMPTS)
    env = (
        {"MODEL_DIR": str(padded_model), "TENSOR_PARALLEL_SIZE": "2"}
        if ranks == "tensor"
        # Compiled: vLLM's CPU backend cannot run eager pipeline stages (parallel_problem).
        else {"PIPELINE_PARALLEL_SIZE": "2", "ENFORCE_EAGER": "0"}
    )
    two = start_server(tmp_path, ranks, **env)
    try:
        assert layout(two) == {"tensor": 1, "pipeline": 1, "data": 1, ranks: 2}
        assert answers(two, PROMPTS) == expected
    finally:
        two.process.stop()


@pytest.mark.engine
def test_an_unpadded_model_at_tp_2_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ServerFailed):
        start_server(tmp_path, "tp2-unpadded", TENSOR_PARALLEL_SIZE="2")
    log = (tmp_path / "tp2-unpadded.log").read_text()
    assert "TENSOR_PARALLEL_SIZE=2 does not divide the model's 9 attention heads" in log
    assert "llmserve pad-heads --tp 2" in log
