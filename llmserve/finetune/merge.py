"""Merge a LoRA adapter into its base: a full HF checkpoint (weights, config, tokenizer and
chat template) that serve (MODEL_DIR), quantize and tune take like any other."""

from __future__ import annotations

import json
from pathlib import Path

from llmserve.errors import LlmserveError


def adapter_base(adapter: Path) -> Path:
    """The base model the adapter records (adapter_config.json's base_model_name_or_path)."""
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise LlmserveError(f"{str(adapter)!r} is not a LoRA adapter (no adapter_config.json)")
    return Path(json.loads(config.read_text())["base_model_name_or_path"])


def merge(adapter: Path, output: Path, base: Path | None = None) -> Path:
    """Write base + adapter, merged, to `output`; returns `output`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = base or adapter_base(adapter)
    if not (base / "config.json").is_file():
        raise LlmserveError(f"base model {str(base)!r} has no config.json (pass --base)")
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")  # the checkpoint's
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output)
    # The tokenizer (and its chat template) from the base: the adapter does not change it.
    AutoTokenizer.from_pretrained(base).save_pretrained(output)
    return output
