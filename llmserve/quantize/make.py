"""Make variant directories: one worker subprocess per variant, each placed atomically.

A variant is written to <name>.partial and renamed to <name> only when the worker finished,
so a directory under the variants root is always complete (its manifest is there). One
variant failing is reported and the others are still made.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from llmserve.errors import LlmserveError
from llmserve.quantize import MANIFEST
from llmserve.quantize.calibration import CalibrationSet
from llmserve.quantize.env import run_worker
from llmserve.quantize.recipes import get_variant
from llmserve.records import atomic_dir


@dataclass
class Made:
    name: str
    path: Path
    status: str  # "made", "kept" (already there) or "failed"
    detail: str = ""


def make_variant(
    name: str,
    model_dir: Path,
    out_root: Path,
    calibration: CalibrationSet | None,
    seed: int,
    force: bool = False,
) -> Made:
    variant = get_variant(name)
    target = out_root / name
    if (target / MANIFEST).is_file() and not force:
        return Made(name, target, "kept", "already made (use --force to remake)")
    if variant.calibrated and calibration is None:
        raise LlmserveError(f"variant {name} needs a calibration set")
    with atomic_dir(target) as partial:
        spec = {
            "variant": name,
            "model_dir": str(model_dir.resolve()),
            "out": str(partial.resolve()),
            "calibration": None if calibration is None else {
                "samples": str(calibration.samples.resolve()), "meta": calibration.meta},
            "seed": seed,
        }
        manifest = run_worker(spec, out_root / "logs" / f"{name}.log")
    notes = (manifest.get("group_plan") or {}).get("notes") or []
    return Made(name, target, "made", f"{manifest['seconds']} s" + "".join(
        f"; {note}" for note in notes))


def make_variants(
    names: list[str],
    model_dir: Path,
    out_root: Path,
    calibration: CalibrationSet | None,
    seed: int,
    force: bool = False,
) -> list[Made]:
    results = []
    for name in names:
        print(f"[{name}] quantizing {model_dir} ...", file=sys.stderr, flush=True)
        try:
            made = make_variant(name, model_dir, out_root, calibration, seed, force)
        except LlmserveError as error:
            made = Made(name, out_root / name, "failed", str(error))
        print(f"[{name}] {made.status}: {made.detail}", file=sys.stderr, flush=True)
        results.append(made)
    return results
