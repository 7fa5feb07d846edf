"""`llmserve gguf`: GGUF levels of the bundled model, read back with gguf's GGUFReader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

from llmserve.cli import main as cli_main
from llmserve.gguf.bundled import embedded_gguf, find_embedded_gguf
from llmserve.gguf.levels import llamacpp_available, make_levels

STEM = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def levels_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gguf")
    wanted = ["F16", "Q8_0", *(["Q2_K"] if llamacpp_available() else [])]
    make_levels(find_embedded_gguf(), out, wanted)
    return out


def tensors(path: Path) -> dict[str, np.ndarray]:
    return {t.name: dequantize(t.data, t.tensor_type) for t in GGUFReader(path).tensors}


@pytest.mark.engine
def test_f16_is_the_bundled_q4_1_weights_exactly(levels_dir: Path) -> None:
    f16 = levels_dir / f"{STEM}.F16.gguf"
    manifest = json.loads(f16.with_suffix(".json").read_text())
    assert manifest["source_type"] == "Q4_1"
    assert manifest["size_bytes"] == f16.stat().st_size
    reader = GGUFReader(f16)
    kinds = {t.tensor_type.name for t in reader.tensors}
    assert kinds == {"F16", "F32"}
    assert manifest["tensor_types"]["F16"] > 100
    # Q4_1 values are exact in F16: the dequantized weights must match bit for bit.
    source, made = tensors(find_embedded_gguf()), tensors(f16)
    assert source.keys() == made.keys()
    name = "blk.0.attn_q.weight"
    np.testing.assert_array_equal(source[name].astype(np.float16), made[name])
    # The metadata (tokenizer, chat template) travels along.
    assert reader.get_field("tokenizer.chat_template") is not None


@pytest.mark.engine
def test_q8_0_is_quantized_and_close_to_f16(levels_dir: Path) -> None:
    q8 = levels_dir / f"{STEM}.Q8_0.gguf"
    manifest = json.loads(q8.with_suffix(".json").read_text())
    assert set(manifest["tensor_types"]) == {"Q8_0", "F32"}  # 1-D norms stay F32
    assert manifest["size_bytes"] < 0.6 * (levels_dir / f"{STEM}.F16.gguf").stat().st_size
    name = "blk.0.ffn_down.weight"
    f16 = tensors(levels_dir / f"{STEM}.F16.gguf")[name].astype(np.float32)
    q8_values = tensors(q8)[name]
    assert q8_values.shape == f16.shape
    # Q8_0: one scale per 32 values, so the error is at most half a step of the block's max/127.
    assert np.abs(q8_values - f16).max() <= np.abs(f16).max() / 127


@pytest.mark.engine
def test_q2_k_made_by_llamacpp(levels_dir: Path) -> None:
    if not llamacpp_available():
        pytest.skip("llama-cpp-python is not installed (requirements-llamacpp.txt)")
    q2 = levels_dir / f"{STEM}.Q2_K.gguf"
    manifest = json.loads(q2.with_suffix(".json").read_text())
    assert manifest["quantizer"] == "llama_cpp.llama_model_quantize"
    kinds = {t.tensor_type.name for t in GGUFReader(q2).tensors}
    assert set(manifest["tensor_types"]) == kinds
    assert q2.stat().st_size < (levels_dir / f"{STEM}.Q8_0.gguf").stat().st_size
    # SmolLM2-135M's 576-wide rows take no k-quant blocks: llama.cpp falls back (Q4_0, and
    # Q3_K for ffn_down's 1536-wide rows), and the manifest says so instead of hiding it.
    assert "Q2_K" not in kinds and manifest["nominal_tensors"] == 0
    assert manifest["weight_tensors"] == 211
    assert "only 0 of 211 weight tensors are Q2_K" in manifest["note"]
    assert json.loads(
        (levels_dir / f"{STEM}.Q8_0.gguf").with_suffix(".json").read_text()
    )["note"] is None


@pytest.mark.engine
def test_rerun_skips_levels_already_made(levels_dir: Path) -> None:
    q8 = levels_dir / f"{STEM}.Q8_0.gguf"
    before = q8.stat().st_mtime_ns
    manifests = make_levels(find_embedded_gguf(), levels_dir, ["Q8_0"])
    assert [m["level"] for m in manifests] == ["Q8_0"]
    assert q8.stat().st_mtime_ns == before


def test_unknown_level_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["gguf", "--levels", "Q9_X", "--out", str(tmp_path)])
    assert code == 2
    out = capsys.readouterr().err.strip()
    assert "unknown GGUF level 'Q9_X'" in out and "\n" not in out
    assert not list(tmp_path.iterdir())


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    code = cli_main(["gguf", "--source", str(tmp_path / "nope.gguf"), "--out", str(tmp_path)])
    assert code == 2


@pytest.mark.engine
def test_the_served_embedded_level_is_made_once_into_the_cache(tmp_path: Path) -> None:
    if not llamacpp_available():
        pytest.skip("llama-cpp-python is not installed (requirements-llamacpp.txt)")
    assert embedded_gguf(tmp_path, "Q4_1") == find_embedded_gguf()  # as shipped
    q4 = embedded_gguf(tmp_path, "Q4_0")  # LLAMACPP_EMBEDDED_LEVEL's default
    assert q4 == tmp_path / f"{STEM}-gguf" / f"{STEM}.Q4_0.gguf"
    kinds = [t.tensor_type.name for t in GGUFReader(q4).tensors]
    assert kinds.count("Q4_0") == 210 and json.loads(q4.with_suffix(".json").read_text())[
        "level"] == "Q4_0"
    before = q4.stat().st_mtime_ns
    assert embedded_gguf(tmp_path, "Q4_0") == q4 and q4.stat().st_mtime_ns == before
