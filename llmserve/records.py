"""Run records that a crash cannot tear: atomically replaced files and append-only JSONL.

A JSONL record is either a whole line or absent. A run killed mid-write leaves a last line
without its newline: it is not a record, and `read_jsonl(..., repair=True)` cuts it off, so the
next append starts on a clean line and a resumed run redoes exactly the work that was lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from llmserve.errors import LlmserveError

Record = dict[str, Any]
# Given a parsed line, the reason it is not a valid record, or None when it is.
RecordCheck = Callable[[Any], str | None]


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` in one step: a reader (or a crash) sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Build a directory whole or not at all: yields `target`.partial (emptied first), which
    replaces `target` when the block ends without an error, so a crash mid-way never leaves a
    half-written directory at `target`. An error removes the partial one; a process killed
    outright leaves it, and the next run empties it first."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def write_json(path: Path, value: Any) -> None:
    """`value` as indented JSON (non-ASCII kept), replaced atomically."""
    write_atomic(path, json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")


def read_jsonl(path: Path, repair: bool = False, check: RecordCheck | None = None) -> list[Record]:
    """The records of `path` (none when it does not exist).

    A torn last line (no newline) is not a record; with `repair` it is removed from the file.
    A bad line anywhere else is corruption: an error naming the file and line. `check` may
    reject a parsed record with a reason (it may keep state, e.g. to refuse duplicates).
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1]  # b"" when the file ends with a newline, as every whole record does
    records: list[Record] = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LlmserveError(f"{path}:{number}: not a JSON record (corrupt file)") from None
        problem = "not a JSON object" if not isinstance(record, dict) else None
        if problem is None and check is not None:
            problem = check(record)
        if problem:
            raise LlmserveError(f"{path}:{number}: {problem}")
        records.append(record)
    if torn and repair:
        with path.open("r+b") as file:
            file.truncate(len(data) - len(torn))
    return records


class JsonlWriter:
    """Appends records, one JSON line each, flushed and fsynced before `write` returns: a
    record is worth a request that took seconds, and a sync costs microseconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def __enter__(self) -> JsonlWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def write(self, record: Record) -> None:
        if self._file is None:
            raise RuntimeError("use JsonlWriter as a context manager")
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def append_jsonl(path: Path, record: Record) -> None:
    """Append one record durably (opens and closes the file: for records minutes apart)."""
    with JsonlWriter(path) as writer:
        writer.write(record)
