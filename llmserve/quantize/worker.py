"""Make one variant with llm-compressor. Runs INSIDE .venv-quant, as a subprocess of env.py.

    python -m llmserve.quantize.worker SPEC.json RESULT.json

SPEC: {"variant", "model_dir", "out", "calibration": {"samples", "meta"} | null, "seed"}.
The variant is written to `out` (the caller renames it into place); its manifest, written
last, records the method, scheme, group plan, calibration set, seed and tool versions.
Only the standard library, torch, transformers, datasets and llm-compressor are imported here
(and llmserve.quantize's pure modules): the serving packages are not installed in this venv.
"""

from __future__ import annotations

import json
import platform
import random
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from llmserve.quantize import MANIFEST
from llmserve.quantize.recipes import IGNORE, GroupPlan, Variant, get_variant, group_plan

TOOLS = ("llmcompressor", "compressed-tensors", "transformers", "torch", "accelerate")


def linear_in_features(model: Any) -> dict[str, int]:
    import torch

    return {
        name: module.in_features
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in IGNORE
    }


def suffix_target(names: list[str]) -> str:
    """One regex target for layers named by their last component (q_proj, down_proj...).

    Suffix regexes (not 210 full names) keep config.json readable, and vLLM matches them
    against the shards of its fused layers (qkv_proj, gate_up_proj) as well.
    """
    suffixes = "|".join(dict.fromkeys(name.rsplit(".", 1)[-1] for name in names))
    return rf"re:.*\.({suffixes})$"


def check_suffixes_agree(features: dict[str, int]) -> None:
    """Suffix targets are only right when every layer of a suffix has the same input size."""
    seen: dict[str, int] = {}
    for name, size in features.items():
        suffix = name.rsplit(".", 1)[-1]
        if seen.setdefault(suffix, size) != size:
            raise SystemExit(f"error: layers named {suffix} have input sizes {seen[suffix]} "
                             f"and {size}; per-suffix group sizes cannot express that")


def w4a16_groups(variant: Variant, plan: GroupPlan) -> dict[str, Any]:
    from compressed_tensors.quantization import preset_name_to_scheme

    groups = {}
    for number, (size, names) in enumerate(sorted(plan.groups.items())):
        scheme = preset_name_to_scheme(variant.scheme, [suffix_target(names)])
        assert scheme.weights is not None
        scheme.weights.group_size = size
        groups[f"group_{number}"] = scheme
    return groups


def build_recipe(variant: Variant, plan: GroupPlan | None) -> list[Any]:
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform import AWQModifier, SmoothQuantModifier

    ignore = list(IGNORE) + (plan.ignored if plan else [])
    if variant.method == "awq":
        # AWQ only rescales channels (smoothing into the preceding norm/linear); the
        # quantization modifier after it picks the group scales and packs the weights.
        assert plan is not None
        return [AWQModifier(),
                QuantizationModifier(config_groups=w4a16_groups(variant, plan), ignore=ignore)]
    if variant.method == "gptq":
        assert plan is not None
        return [GPTQModifier(config_groups=w4a16_groups(variant, plan), ignore=ignore)]
    if variant.method == "smoothquant+gptq":
        return [SmoothQuantModifier(smoothing_strength=0.8),
                GPTQModifier(scheme=variant.scheme, targets=["Linear"], ignore=ignore)]
    if variant.method == "rtn":
        return [QuantizationModifier(scheme=variant.scheme, targets=["Linear"], ignore=ignore)]
    raise SystemExit(f"error: no recipe for method {variant.method!r}")


def cpu_only_workarounds() -> list[str]:
    """Patches llm-compressor needs on a machine without an accelerator; what was patched.

    llmcompressor 0.14.0.1's AWQ pins every cached activation before its grid search (to
    speed host-to-device copies), and torch refuses to pin memory without an accelerator:
    "RuntimeError: Cannot access accelerator device when none is available". With no device
    to copy to, pinning has no purpose, so it becomes a no-op here; results are unchanged.
    """
    import torch

    if torch.accelerator.is_available():
        return []
    from llmcompressor.pipelines.cache import IntermediatesCache

    def no_pin(self: Any, batch_index: int, input_names: list[str] | None = None) -> None:
        return None

    IntermediatesCache.pin_memory = no_pin  # type: ignore[method-assign]
    return ["llmcompressor IntermediatesCache.pin_memory made a no-op (no accelerator: "
            "torch cannot pin memory; AWQ pins cached activations unconditionally)"]


def calibration_dataset(samples: Path) -> Any:
    from datasets import Dataset

    rows = []
    with samples.open(encoding="utf-8") as lines:
        for line in lines:
            ids = json.loads(line)["input_ids"]
            rows.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return Dataset.from_list(rows)


def quantize(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    variant = get_variant(spec["variant"])
    model_dir, out = Path(spec["model_dir"]), Path(spec["out"])
    seed = int(spec["seed"])
    random.seed(seed)
    torch.manual_seed(seed)

    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    plan = None
    if variant.group_size is not None:
        features = linear_in_features(model)
        check_suffixes_agree(features)
        plan = group_plan(features, variant.group_size)
        for note in plan.notes:
            print(f"group plan: {note}", flush=True)
    recipe = build_recipe(variant, plan)

    calibration = spec.get("calibration")
    kwargs: dict[str, Any] = {}
    if variant.calibrated:
        if not calibration:
            raise SystemExit(f"error: variant {variant.name} needs a calibration set")
        dataset = calibration_dataset(Path(calibration["samples"]))
        kwargs = {
            "dataset": dataset,
            "num_calibration_samples": len(dataset),
            "max_seq_length": int(calibration["meta"]["max_length"]),
        }
    workarounds = cpu_only_workarounds()
    oneshot(model=model, recipe=recipe, **kwargs)

    model.save_pretrained(str(out), save_compressed=True)
    tokenizer.save_pretrained(str(out))
    manifest = {
        "variant": variant.name,
        "method": variant.method,
        "scheme": variant.scheme,
        "description": variant.description,
        "source_model": str(model_dir),
        "ignore": list(IGNORE),
        "group_plan": plan.record() if plan else None,
        "calibration": calibration["meta"] if variant.calibrated and calibration else None,
        "calibration_samples": int(kwargs.get("num_calibration_samples", 0)),
        "seed": seed,
        "tools": {name: version(name) for name in TOOLS},
        "python": platform.python_version(),
        "seconds": round(time.time() - started, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "recipe": [type(m).__name__ for m in recipe],
        "workarounds": workarounds,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return manifest


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m llmserve.quantize.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    manifest = quantize(spec)
    Path(argv[1]).write_text(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
