"""Make GGUF variants of the bundled model at F16 and llama.cpp quantization levels.

Each level is `<out>/<model>.<LEVEL>.gguf` beside `<out>/<model>.<LEVEL>.json`, its manifest
(level, source, source type, file size, tensor-type counts, seconds taken). A level whose
manifest exists and whose file has the recorded size is skipped, so a rerun resumes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import Keys, LlamaFileType
from gguf.quants import dequantize, quantize

from llmserve.errors import ExitCode, LlmserveError
from llmserve.records import write_json

# llama.cpp file types (llama_ftype) of the levels this command makes.
LEVELS: dict[str, LlamaFileType] = {
    "F16": LlamaFileType.MOSTLY_F16,
    "Q8_0": LlamaFileType.MOSTLY_Q8_0,
    "Q4_K_M": LlamaFileType.MOSTLY_Q4_K_M,
    "Q2_K": LlamaFileType.MOSTLY_Q2_K,
    # Not a default: the fastest level for llama.cpp on a CPU whose repacked kernels it has
    # (llmserve/engines/llamacpp/engine.py has the measured prefill and decode times).
    "Q4_0": LlamaFileType.MOSTLY_Q4_0,
}
DEFAULT_LEVELS = ("F16", "Q8_0", "Q4_K_M", "Q2_K")
# The GGML type most weight tensors of a level get (Q4_K_M mixes in Q6_K by design).
NOMINAL_TYPE = {"F16": "F16", "Q8_0": "Q8_0", "Q4_K_M": "Q4_K", "Q2_K": "Q2_K", "Q4_0": "Q4_0"}


@dataclass(frozen=True)
class Manifest:
    """What one level file is and how it was made."""

    level: str
    path: str
    source: str
    source_type: str
    size_bytes: int
    tensor_types: dict[str, int]
    seconds: float
    quantizer: str
    # Weight (non-F32) tensors stored at the level's nominal type, and a line saying why
    # fewer did: k-quants need rows of a multiple of 256 values. SmolLM2-135M's rows are 576
    # wide, so at Q2_K llama.cpp stored none as Q2_K (180 Q4_0, 30 Q3_K, 1 Q8_0).
    nominal_tensors: int
    weight_tensors: int
    note: str | None


def nominal_share(level: str, types: dict[str, int]) -> tuple[int, int, str | None]:
    """(tensors at the level's nominal type, weight tensors, a note when under half)."""
    nominal = NOMINAL_TYPE[level]
    weights = sum(n for kind, n in types.items() if kind != "F32")
    at_level = types.get(nominal, 0)
    if 2 * at_level >= weights:
        return at_level, weights, None
    others = ", ".join(f"{n} {k}" for k, n in types.items() if k not in ("F32", nominal))
    note = (
        f"only {at_level} of {weights} weight tensors are {nominal}: llama.cpp fell back to "
        f"{others} where rows are not a multiple of 256 values (k-quant blocks)"
    )
    return at_level, weights, note


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each GGML type the file holds, e.g. {"Q8_0": 210, "F32": 61}."""
    counts = Counter(t.tensor_type.name for t in GGUFReader(path).tensors)
    return dict(sorted(counts.items()))


def file_type_name(reader: GGUFReader) -> str:
    """The file's general.file_type as a level name (Q4_1 for the bundled model)."""
    field = reader.get_field(Keys.General.FILE_TYPE)
    if field is None:
        return "unknown"
    return LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_")


def to_f16(data: np.ndarray, kind: GGMLQuantizationType) -> np.ndarray:
    """A quantized tensor as F16 (F32/F16 tensors, the norms, unchanged)."""
    if kind in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return np.array(data)
    return dequantize(data, kind).astype(np.float16)


def to_q8_0(data: np.ndarray, kind: GGMLQuantizationType) -> np.ndarray:
    """Q8_0 of a 2-D tensor (gguf-py's reference quantizer); 1-D tensors stay F32 as llama.cpp."""
    if data.ndim < 2 or kind == GGMLQuantizationType.F32:
        return np.array(data)
    values = dequantize(data, kind).astype(np.float32)
    return quantize(values, GGMLQuantizationType.Q8_0)


def write_f16(source: Path, out: Path) -> None:
    """Dequantize every quantized tensor of `source` to F16 (F32 ones stay F32) into `out`."""
    write_converted(source, out, LlamaFileType.MOSTLY_F16, to_f16)


def write_converted(
    source: Path,
    out: Path,
    file_type: LlamaFileType,
    convert: Callable[[np.ndarray, GGMLQuantizationType], np.ndarray],
) -> None:
    """Copy `source`'s metadata into `out` and each tensor through `convert`."""
    reader = GGUFReader(source)
    arch = reader.get_field(Keys.General.ARCHITECTURE)
    if arch is None:
        raise LlmserveError(f"{source} has no general.architecture: not a model GGUF")
    partial = out.with_name(out.name + ".partial")
    writer = GGUFWriter(partial, arch=str(arch.contents()))
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (
            Keys.General.ARCHITECTURE,
            Keys.General.FILE_TYPE,
        ):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub_type)
    writer.add_file_type(int(file_type))
    for tensor in reader.tensors:
        data = convert(tensor.data, tensor.tensor_type)
        if data.dtype == np.uint8:  # Q8_0 blocks: the writer derives the shape from the bytes
            writer.add_tensor(tensor.name, data, raw_dtype=GGMLQuantizationType.Q8_0)
        else:  # the reader's numpy shape is the GGUF shape reversed, as the writer expects
            writer.add_tensor(tensor.name, data.reshape(tuple(reversed(tensor.shape.tolist()))))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)


def llamacpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def quantize_with_llamacpp(source: Path, out: Path, level: str) -> None:
    """llama.cpp's quantizer (the one `llama-quantize` runs) through llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError as error:
        raise LlmserveError(
            f"level {level} needs llama-cpp-python: pip install -r requirements-llamacpp.txt"
        ) from error
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(LEVELS[level])
    params.nthread = 0  # all cores
    partial = out.with_name(out.name + ".partial")
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), llama_cpp.byref(params)
    )
    if status != 0:
        raise LlmserveError(
            f"llama_model_quantize {level} of {source} failed ({status})", ExitCode.FAILED
        )
    partial.replace(out)


def level_path(out_dir: Path, stem: str, level: str) -> Path:
    return out_dir / f"{stem}.{level}.gguf"


def load_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest beside a level file, if it is complete (file present at its size)."""
    import json

    manifest = path.with_suffix(".json")
    if not manifest.exists() or not path.exists():
        return None
    value: dict[str, Any] = json.loads(manifest.read_text())
    return value if value.get("size_bytes") == path.stat().st_size else None


def make_levels(source: Path, out_dir: Path, levels: list[str]) -> list[dict[str, Any]]:
    """Make each level (F16 first: the others are quantized from it); returns the manifests."""
    unknown = [name for name in levels if name not in LEVELS]
    if unknown:
        raise LlmserveError(f"unknown GGUF level {unknown[0]!r}; known: {', '.join(LEVELS)}")
    if not source.is_file():
        raise LlmserveError(f"source GGUF {source} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = source.name.split(".")[0]
    source_type = file_type_name(GGUFReader(source))
    f16 = level_path(out_dir, stem, "F16")
    manifests: list[dict[str, Any]] = []
    wanted = ["F16", *[n for n in levels if n != "F16"]]  # F16 is every other level's source
    for level in wanted:
        path = level_path(out_dir, stem, level)
        done = load_manifest(path)
        if done is None:
            started = time.perf_counter()
            if level == "F16":
                write_f16(source, path)
                quantizer = "gguf-py dequantize"
            elif level == "Q8_0" and not llamacpp_available():
                # Fallback without llama-cpp-python: gguf-py's Q8_0 (same block format).
                write_converted(f16, path, LlamaFileType.MOSTLY_Q8_0, to_q8_0)
                quantizer = "gguf-py quantize"
            else:
                quantize_with_llamacpp(f16, path, level)
                quantizer = "llama_cpp.llama_model_quantize"
            types = tensor_types(path)
            nominal, weights, note = nominal_share(level, types)
            done = asdict(
                Manifest(
                    level=level,
                    path=str(path),
                    source=str(source),
                    source_type=source_type,
                    size_bytes=path.stat().st_size,
                    tensor_types=types,
                    seconds=round(time.perf_counter() - started, 2),
                    quantizer=quantizer,
                    nominal_tensors=nominal,
                    weight_tensors=weights,
                    note=note,
                )
            )
            write_json(path.with_suffix(".json"), done)
        if level in levels:
            manifests.append(done)
    return manifests
