"""Memory figures: weight bytes of a checkpoint, and the peak of an engine's process tree."""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

MB = 1024 * 1024


# Bytes of one element of each safetensors dtype that a served dtype replaces (floating
# tensors are cast to the engine's dtype when loaded; packed quantized ones are not).
FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
SERVED_SIZES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def _tensor_headers(model_dir: Path) -> list[dict[str, Any]] | None:
    """Every tensor's header entry (dtype, shape, data_offsets) in the checkpoint's safetensors
    files (None: none there, or one is not a readable safetensors file).

    Read from each file's header (8-byte length, then JSON with every tensor's byte range), so
    nothing is loaded.
    """
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    tensors: list[dict[str, Any]] = []
    for path in files:
        with path.open("rb") as handle:
            head = handle.read(8)
            (length,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
            # A broken file must not be read blindly: its "length" can be any 8 bytes.
            if not 0 < length <= path.stat().st_size - 8:
                return None
            try:
                header = json.loads(handle.read(length))
            except ValueError:
                return None
        tensors += [tensor for name, tensor in header.items() if name != "__metadata__"]
    return tensors


def _stored(tensor: dict[str, Any]) -> int:
    start, end = tensor["data_offsets"]
    return int(end - start)


def checkpoint_weight_bytes(model_dir: Path) -> int | None:
    """Bytes of the tensors stored in the checkpoint (None: no readable safetensors);
    quantized checkpoints count their packed size, which is what they use."""
    tensors = _tensor_headers(model_dir)
    return None if tensors is None else sum(_stored(t) for t in tensors)


def served_weight_bytes(model_dir: Path, dtype: str | None) -> int | None:
    """Bytes the weights take once an engine serving `dtype` loaded them: floating tensors
    at `dtype`'s width (a bf16 checkpoint served as float32 doubles), packed quantized ones
    as stored. `dtype` None or unknown ("auto"): as stored."""
    tensors = _tensor_headers(model_dir)
    if tensors is None:
        return None
    width = SERVED_SIZES.get(dtype or "")
    return sum(
        _stored(t) // FLOAT_DTYPES[t["dtype"]] * width
        if width and t.get("dtype") in FLOAT_DTYPES else _stored(t)
        for t in tensors
    )


def checkpoint_params(model_dir: Path) -> int | None:
    """Parameters in the checkpoint's floating tensors (None: no readable safetensors or a
    quantized one, whose packed tensors do not count parameters)."""
    tensors = _tensor_headers(model_dir)
    if tensors is None or any(t.get("dtype") not in FLOAT_DTYPES for t in tensors):
        return None
    return sum(_stored(t) // FLOAT_DTYPES[t["dtype"]] for t in tensors)


def process_tree(pid: int | None) -> list[psutil.Process]:
    """A process and all its descendants ([] when there is none or it is gone)."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone).

    RSS double-counts pages the processes share (libraries, fork copies), so it bounds the
    tree's footprint from above; the same rule is used for every system.
    """
    total = 0
    for process in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


def tree_cpu_seconds(pid: int | None) -> float:
    """User plus system CPU seconds used so far by a process tree (0 once it is gone).

    The difference over a run is the engine's CPU cost of that run: unlike wall time, it
    hardly moves when other work shares the cores, which makes it the steadier figure for
    comparing CPU configurations on a busy machine.
    """
    total = 0.0
    for process in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def gpu_used_bytes() -> int | None:
    """Device memory in use on all NVIDIA GPUs (None without them).

    Whole-device figures rather than per-process ones: inside containers nvidia-smi reports
    host PIDs, which match nothing here. Systems run one at a time, so the rise over the
    figure before a system started is that system's.
    """
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    values = [int(v) for v in out.split() if v.strip().isdigit()]
    return sum(values) * MB if values else None


class PeakMemory:
    """Samples a process tree in a background thread; `peak_rss`/`peak_gpu` hold the maxima.

    Use as a context manager around the whole life of one system (start, runs, stop);
    `pid_of` names the tree's root, or None while there is none yet.
    """

    def __init__(self, pid_of: Callable[[], int | None], interval: float = 0.5,
                 gpu_interval: float = 2.0) -> None:
        self.pid_of = pid_of
        self.interval = interval
        self.gpu_interval = gpu_interval
        self.peak_rss = 0
        self.peak_gpu = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._gpu_baseline = gpu_used_bytes()

    def sample(self) -> None:
        pid = self.pid_of()
        if pid is not None:
            self.peak_rss = max(self.peak_rss, tree_rss(pid))

    def _sample_gpu(self) -> None:
        used = gpu_used_bytes()
        if used is not None and self._gpu_baseline is not None:
            self.peak_gpu = max(self.peak_gpu, used - self._gpu_baseline)

    def _run(self) -> None:
        next_gpu = 0.0
        # Event.wait is the sampling interval and returns at once when stopped.
        while not self._stop.wait(self.interval):
            self.sample()
            if self._gpu_baseline is not None and time.monotonic() >= next_gpu:
                self._sample_gpu()
                next_gpu = time.monotonic() + self.gpu_interval

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def to_json(self) -> dict[str, float | None]:
        return {
            "peak_rss_mb": self.peak_rss / MB if self.peak_rss else None,
            "peak_gpu_mb": self.peak_gpu / MB if self.peak_gpu else None,
        }
