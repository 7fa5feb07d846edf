"""The per-item details file: appended and fsynced one item at a time (written with
llmserve.records.JsonlWriter), read back for resume.

The details file is the run's only record: the summary is computed from it, so an
interrupted run loses nothing and a resumed run ends with every item exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmserve.records import Record, RecordCheck, read_jsonl


def details_check() -> RecordCheck:
    """A record check for one read of a details file: every record names its item, once."""
    seen: dict[str, int] = {}
    count = 0

    def check(record: Any) -> str | None:
        nonlocal count
        count += 1
        if "id" not in record:
            return "not a details record (corrupt file)"
        item_id = str(record["id"])
        if item_id in seen:
            return (f"item {item_id!r} again (first as record {seen[item_id]}); "
                    "were two judges writing to the same --out?")
        seen[item_id] = count
        return None

    return check


def read_details(path: Path, repair: bool = False) -> list[Record]:
    """The records in `path` (none if it does not exist).

    A run killed mid-write leaves a last line without its newline; that line is not a
    record. With `repair` it is cut off the file, so that appending starts on a clean line.
    A bad line anywhere else is corruption and an error naming it.
    """
    return read_jsonl(path, repair=repair, check=details_check())
