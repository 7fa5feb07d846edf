"""The per-item details file: appended and flushed one item at a time, read back for resume.

The details file is the run's only record: the summary is computed from it, so an
interrupted run loses nothing and a resumed run ends with every item exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from llmserve.judge import JudgeError

Record = dict[str, Any]


def read_details(path: Path, repair: bool = False) -> list[Record]:
    """The records in `path` (none if it does not exist).

    A run killed mid-write leaves a last line without its newline; that line is not a
    record. With `repair` it is cut off the file, so that appending starts on a clean line.
    A bad line anywhere else is corruption and an error naming it.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1]  # b"" when the file ends with a newline, as every whole record does
    records: list[Record] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            item_id = str(record["id"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise JudgeError(f"{path}:{number}: not a details record (corrupt file)") from None
        if item_id in seen:
            raise JudgeError(
                f"{path}:{number}: item {item_id!r} again (first on line {seen[item_id]}); "
                "were two judges writing to the same --out?"
            )
        seen[item_id] = number
        records.append(record)
    if torn and repair:
        with path.open("r+b") as file:
            file.truncate(len(data) - len(torn))
    return records


class DetailsWriter:
    """Appends records, one JSON line each, flushed to the OS before the next request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def __enter__(self) -> DetailsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def write(self, record: Record) -> None:
        assert self._file is not None, "use DetailsWriter as a context manager"
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        # fsync too: a record is worth a request that took seconds; a sync costs microseconds.
        os.fsync(self._file.fileno())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
