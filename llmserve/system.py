"""Facts about this machine's CPUs, read without importing any engine: its model, the
instruction-set flags that decide which kernels and dtypes run fast, and the CPUs this process
may run on. The engines choose defaults from them; run records (harness.metadata) report them."""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

# The flags that decide which kernels and dtypes run fast on a CPU (bf16 is 4-6x slower than
# float32 on a CPU without native bf16: see ../shared/notes and docs/engines.md).
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


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
