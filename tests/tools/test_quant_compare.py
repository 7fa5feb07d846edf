"""Broken variant directories become failed rows with their reason; the run goes on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmserve.model import embedded_dir
from llmserve.quantize.cli import main
from llmserve.quantize.compare import servable_problem
from llmserve.settings import Settings

EMBEDDED = embedded_dir(Settings().cache_dir)


def config_only(path: Path, config: dict[str, object]) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.safetensors").write_bytes(b"\x00")
    return path


@pytest.fixture
def broken_variants(tmp_path: Path) -> Path:
    root = tmp_path / "variants"
    (root / "no-config").mkdir(parents=True)
    config_only(root / "unknown-method", {"quantization_config": {"quant_method": "zipbits"}})
    config_only(root / "bad-json", {})
    (root / "bad-json" / "config.json").write_text("{not json")
    no_weights = config_only(root / "no-weights", {})
    (no_weights / "model.safetensors").unlink()
    return root


def test_servable_problem_names_what_is_wrong(broken_variants: Path) -> None:
    assert servable_problem(broken_variants / "no-config") == "missing config.json"
    assert servable_problem(broken_variants / "unknown-method") == (
        "unknown quantization method 'zipbits' in config.json")
    assert "not valid JSON" in str(servable_problem(broken_variants / "bad-json"))
    assert "no weight files" in str(servable_problem(broken_variants / "no-weights"))
    assert "not a directory" in str(servable_problem(broken_variants / "absent"))


def test_compare_marks_broken_variants_failed_and_still_writes_the_scoreboard(
        broken_variants: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "compare"
    code = main(["compare", "--no-original", "--variants-root", str(broken_variants),
                 "--out", str(out), "--model-dir", str(EMBEDDED), "--limit", "0"])
    assert code == 1  # not every candidate succeeded
    record = json.loads((out / "scoreboard.json").read_text())
    reasons = {row["name"]: (row["status"], row["reason"]) for row in record["rows"]}
    assert reasons == {
        "no-config": ("failed", "missing config.json"),
        "unknown-method": ("failed", "unknown quantization method 'zipbits' in config.json"),
        "bad-json": ("failed", reasons["bad-json"][1]),
        "no-weights": ("failed", "no weight files (*.safetensors, *.bin)"),
    }
    assert len((out / "rows.jsonl").read_text().splitlines()) == 4  # appended one by one
    assert (out / "scoreboard.png").is_file()
    assert "no-config: FAILED: missing config.json" in capsys.readouterr().out
    # Without --resume the folder is refused; with it the recorded rows are kept, and
    # --retry-failed runs the failed ones again (appending their new rows).
    again = ["compare", "--no-original", "--variants-root", str(broken_variants),
             "--out", str(out), "--model-dir", str(EMBEDDED), "--limit", "0"]
    assert main(again) == 2
    assert main([*again, "--resume"]) == 1
    assert len((out / "rows.jsonl").read_text().splitlines()) == 4
    assert main([*again, "--resume", "--retry-failed"]) == 1
    assert len((out / "rows.jsonl").read_text().splitlines()) == 8


@pytest.mark.engine
def test_engine_start_failure_is_a_failed_row(tmp_path: Path) -> None:
    """A directory that passes the checks but whose weights are garbage: the engine fails."""
    variant = tmp_path / "variants" / "garbage-weights"
    variant.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "generation_config.json"):
        shutil.copy(EMBEDDED / name, variant / name)
    (variant / "model.safetensors").write_bytes(b"this is not a safetensors file")
    out = tmp_path / "compare"
    assert main(["compare", "--no-original", "--variant", str(variant), "--out", str(out),
                 "--model-dir", str(EMBEDDED), "--limit", "0"]) == 1
    (row,) = json.loads((out / "scoreboard.json").read_text())["rows"]
    assert row["status"] == "failed"
    assert row["reason"].startswith("engine start: ")


def test_gguf_levels_are_candidates_served_by_llamacpp(tmp_path: Path) -> None:
    import argparse

    from llmserve.quantize.compare import candidates, describe

    level = tmp_path / "SmolLM2-135M-Instruct.Q8_0.gguf"
    level.write_bytes(b"GGUF")
    level.with_suffix(".json").write_text(json.dumps({"level": "Q8_0", "size_bytes": 4}))
    args = argparse.Namespace(no_original=True, variant_dirs=None,
                              variants_root=tmp_path / "none", gguf_paths=[tmp_path])
    found = candidates(args, tmp_path)
    assert found == [("gguf-SmolLM2-135M-Instruct.Q8_0", level)]
    assert servable_problem(level) is None
    assert "not a file" in (servable_problem(tmp_path / "missing.gguf") or "")
    described = describe(level)
    assert described["scheme"] == "Q8_0" and described["manifest"]["size_bytes"] == 4
