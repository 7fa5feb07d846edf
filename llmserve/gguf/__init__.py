"""GGUF levels of the served model (F16, Q8_0, Q4_K_M, Q2_K) for the llama.cpp engine.

The bundled SmolLM2 GGUF is Q4_1, so there is no F16/BF16 original to start from. `levels`
first writes an F16 GGUF by dequantizing the Q4_1 tensors (lossless: every Q4_1 value is
exactly representable in F16), then quantizes that F16 file with llama.cpp's own quantizer
(`llama_cpp.llama_model_quantize`). The lower levels are therefore requantized from Q4_1
weights; they can be no better than Q4_1, which the manifests record as `source_type`.
"""

from __future__ import annotations

from pathlib import Path

from llmserve import paths

GGUF_ROOT: Path = paths.REPO_ROOT / "models" / "gguf"  # default output folder of `levels`
