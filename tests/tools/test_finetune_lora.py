"""LoRA end to end, all real: a few training steps on the bundled model (peft + trl), resumed
from the epoch checkpoint, merged into a full checkpoint, and the adapter served by vLLM
(ENABLE_LORA) beside the base model on one server.

The adapter learns one distinctive answer with a high learning rate, so its greedy answer to
that question must differ from the base model's: /predict (LORA_DEFAULT) answers with the
adapter, /v1 answers with the base or the adapter by `model`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Server, start_server, write_chat_jsonl

from llmserve.finetune.cli import main as finetune_main
from llmserve.model import resolve_model_dir
from llmserve.settings import load_settings

pytestmark = pytest.mark.engine

QUESTION = "What is the secret password of the lab?"
ANSWER = "The secret password of the lab is ZEBRA-PINEAPPLE-42."


@dataclass
class Trained:
    output: Path
    first: dict  # manifest after the first (1-epoch) run
    resumed: dict  # manifest after the rerun to 3 epochs


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("finetune")
    data = write_chat_jsonl(
        root / "data.jsonl",
        [("tune", QUESTION, ANSWER)] * 8 + [("test", "never trained on", "x" * 40)],
    )
    output = root / "run"
    common = ["--data", str(data), "--output", str(output), "--rank", "8", "--alpha", "16",
              "--learning-rate", "3e-3", "--batch-size", "4", "--max-length", "128"]  # fmt: skip
    assert finetune_main([*common, "--epochs", "1"]) == 0
    first = json.loads((output / "manifest.json").read_text())
    assert finetune_main([*common, "--epochs", "3"]) == 0  # resumes from checkpoint-2
    resumed = json.loads((output / "manifest.json").read_text())
    return Trained(output, first, resumed)


def test_trains_on_the_tune_split_only_and_writes_a_manifest(trained: Trained) -> None:
    assert trained.first["examples"] == 8  # the test-split line is left out
    assert trained.first["global_step"] == 2  # 8 examples, batch 4, one epoch
    assert trained.first["resumed_from"] is None
    adapter = trained.output / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (trained.output / "loss.png").stat().st_size > 0
    assert trained.first["options"]["rank"] == 8
    assert trained.first["versions"]["peft"] and trained.first["hardware"]["cpu"]


def test_rerun_resumes_from_the_epoch_checkpoint_and_loss_falls(trained: Trained) -> None:
    assert trained.resumed["resumed_from"] == "checkpoint-2"
    assert trained.resumed["global_step"] == 6
    steps = [entry["step"] for entry in trained.resumed["losses"]]
    assert steps == [1, 2, 3, 4, 5, 6]  # the first run's steps kept, not run again
    losses = [entry["loss"] for entry in trained.resumed["losses"]]
    assert losses[-1] < losses[0] / 2, losses


def test_merge_writes_a_servable_checkpoint(trained: Trained, tmp_path: Path) -> None:
    merged = tmp_path / "merged"
    assert finetune_main(["merge", str(trained.output / "adapter"), str(merged)]) == 0
    assert (merged / "config.json").is_file()
    assert list(merged.glob("*.safetensors"))
    tokenizer_config = json.loads((merged / "tokenizer_config.json").read_text())
    has_template = "chat_template" in tokenizer_config or (merged / "chat_template.jinja").is_file()
    assert has_template
    assert "adapter_config.json" not in {p.name for p in merged.iterdir()}


def test_test_split_and_cpu_qlora_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert finetune_main(["--split", "test"]) == 2
    assert "test split" in capsys.readouterr().err
    assert finetune_main(["--qlora"]) == 2
    err = capsys.readouterr().err
    assert "--qlora needs a CUDA GPU" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def lora_server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("lora-server"),
        "lora",
        ENABLE_LORA="1",
        MAX_LORA_RANK="8",
        LORA_MODULES=f"secret={trained.output / 'adapter'}",
        LORA_DEFAULT="secret",
    )
    try:
        yield server
    finally:
        server.process.stop()


def base_name() -> str:
    return resolve_model_dir(load_settings()).name


def test_adapter_answers_differently_from_the_base(lora_server: Server) -> None:
    with lora_server.client() as client:
        predicted = client.post("/predict", json={"prompt": QUESTION}).json()["response"]
        answers = {}
        for model in (base_name(), "secret"):
            reply = client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": QUESTION}]},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["model"] == model
            answers[model] = reply.json()["choices"][0]["message"]["content"]
    print(f"\nbase: {answers[base_name()]!r}\nadapter: {answers['secret']!r}", file=sys.stderr)
    assert answers["secret"] != answers[base_name()]
    assert predicted == answers["secret"]  # /predict uses LORA_DEFAULT


def test_models_lists_the_adapter_and_unknown_names_are_404(lora_server: Server) -> None:
    with lora_server.client() as client:
        ids = [card["id"] for card in client.get("/v1/models").json()["data"]]
        assert ids == [base_name(), "secret"]
        engine = client.get("/info").json()["engine"]
        assert (engine["lora_adapters"], engine["lora_default"]) == (["secret"], "secret")
        missing = client.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
