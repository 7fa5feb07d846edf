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

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from llmserve.tune import TuneError

RESULTS = "tune_results.jsonl"
CONFIRMS = "confirm_results.jsonl"
META = "meta.json"
STATUS = "status.json"
LOCK = ".lock"

Record = dict[str, Any]


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` in one step: a reader sees the old file or the new, never half of one."""
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


def read_jsonl(path: Path, repair: bool = False) -> list[Record]:
    """The records of `path`. A last line without its newline was cut by a crash: it is not a
    record, and with `repair` it is removed so that the next append starts a clean line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1]
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TuneError(f"{path}:{number}: not a JSON record (corrupt file)") from None
        if not isinstance(record, dict) or "key" not in record:
            raise TuneError(f"{path}:{number}: a record without a trial key")
        records.append(record)
    if torn and repair:
        with path.open("r+b") as file:
            file.truncate(len(data) - len(torn))
    return records


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
            raise TuneError(f"another auto_tune (pid {holder}) is working in {self.out}; wait "
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
                    raise TuneError(
                        f"{self.out} holds trials measured with {key}={old.get(key)!r}, not "
                        f"{meta.get(key)!r}: rerun with the same flags or choose another --out")
            return
        write_atomic(path, json.dumps(meta, indent=2) + "\n")

    def records(self, confirm: bool = False) -> dict[str, Record]:
        """The finished records by key (a key recorded twice, e.g. a retried failure: the last)."""
        path = self.out / (CONFIRMS if confirm else RESULTS)
        return {record["key"]: record for record in read_jsonl(path, repair=True)}

    def append(self, record: Record, confirm: bool = False) -> None:
        path = self.out / (CONFIRMS if confirm else RESULTS)
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def write_status(self, status: Record) -> None:
        write_atomic(self.out / STATUS, json.dumps(status, ensure_ascii=False, indent=2) + "\n")

    def read_status(self) -> Record | None:
        path = self.out / STATUS
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
