"""The output folder's records: crash-safe results, an atomically replaced status, a lock.

  tune_results.jsonl     one line per finished trial (ok, failed or timeout), appended,
                         flushed and fsynced before the next trial starts
  confirm_results.jsonl  the same for the confirmation runs on the test split
  meta.json              how trials are measured; a rerun must measure the same way
  status.json            what the run is doing now, replaced atomically (for `watch cat`)
  .lock                  held while a tuner works in the folder: two would mix their records

A trial is either a whole line or absent, so a crash mid-trial (or mid-write) leaves it
absent, and the rerun redoes it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from llmserve.errors import LlmserveError
from llmserve.records import Record, append_jsonl, read_jsonl, write_json

RESULTS = "tune_results.jsonl"
CONFIRMS = "confirm_results.jsonl"
META = "meta.json"
STATUS = "status.json"
LOCK = ".lock"


def keyed(record: Any) -> str | None:
    """A trial record names its trial: a line without a key is not one of ours."""
    return None if "key" in record else "a record without a trial key"


def read_records(path: Path, repair: bool = False) -> list[Record]:
    """The trial records of `path`; a torn last line (a crash mid-write) is not a record, and
    with `repair` it is removed so that the next append starts a clean line."""
    return read_jsonl(path, repair=repair, check=keyed)


class Journal:
    def __init__(self, out: Path) -> None:
        self.out = out
        self._lock: IO[str] | None = None

    def lock(self) -> None:
        """Refuse to share the folder with a running tuner (a dead one leaves no lock)."""
        self.out.mkdir(parents=True, exist_ok=True)
        file = (self.out / LOCK).open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "?"
            file.close()
            raise LlmserveError(f"another auto_tune (pid {holder}) is working in {self.out}; wait "
                            "for it or choose another --out") from None
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self._lock = file

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    def check_meta(self, meta: Record) -> None:
        """Trials are only comparable when measured alike: a rerun must use the same judge
        data, split, limit, repeats and mode as the trials already in the folder."""
        path = self.out / META
        if path.exists():
            old = json.loads(path.read_text())
            for key in sorted(set(old) | set(meta)):
                if old.get(key) != meta.get(key):
                    raise LlmserveError(
                        f"{self.out} holds trials measured with {key}={old.get(key)!r}, not "
                        f"{meta.get(key)!r}: rerun with the same flags or choose another --out")
            return
        write_json(path, meta)

    def records(self, confirm: bool = False) -> dict[str, Record]:
        """The finished records by key (a key recorded twice, e.g. a retried failure: the last)."""
        path = self.out / (CONFIRMS if confirm else RESULTS)
        return {record["key"]: record for record in read_records(path, repair=True)}

    def append(self, record: Record, confirm: bool = False) -> None:
        append_jsonl(self.out / (CONFIRMS if confirm else RESULTS), record)

    def write_status(self, status: Record) -> None:
        write_json(self.out / STATUS, status)

    def read_status(self) -> Record | None:
        path = self.out / STATUS
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
