"""Run records: atomic replacement, torn-line repair, corruption named by line, durable appends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmserve.errors import ExitCode, LlmserveError
from llmserve.records import (
    JsonlWriter,
    append_jsonl,
    atomic_dir,
    read_jsonl,
    write_atomic,
    write_json,
)


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "status.json"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]


def test_write_atomic_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "record.json"
    write_json(path, {"a": 1})

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_atomic_dir_replaces_whole_or_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("half")
        raise RuntimeError("crash mid-way")
    assert (target / "weights").read_text() == "old"  # untouched by the failed build
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no partial left behind
    with atomic_dir(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"


def test_torn_last_line_is_not_a_record_and_repair_cuts_it(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    append_jsonl(path, {"id": 1})
    with path.open("a") as file:
        file.write('{"id": 2, "half')  # a crash mid-write
    assert read_jsonl(path) == [{"id": 1}]
    assert path.read_text().endswith("half")  # not repaired unless asked
    assert read_jsonl(path, repair=True) == [{"id": 1}]
    append_jsonl(path, {"id": 3})
    assert read_jsonl(path) == [{"id": 1}, {"id": 3}]


def test_corrupt_line_in_the_middle_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1}\nnot json\n{"id": 3}\n')
    with pytest.raises(LlmserveError, match=r"r\.jsonl:2: not a JSON record") as caught:
        read_jsonl(path)
    assert caught.value.exit_code is ExitCode.USAGE


def test_check_rejects_records_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1}\n{"id": 1}\n')
    seen: set[Any] = set()

    def unique(record: dict[str, Any]) -> str | None:
        if record["id"] in seen:
            return f"item {record['id']} again"
        seen.add(record["id"])
        return None

    with pytest.raises(LlmserveError, match=r"r\.jsonl:2: item 1 again"):
        read_jsonl(path, check=unique)


def test_missing_file_has_no_records(tmp_path: Path) -> None:
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_writer_lines_are_on_disk_before_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonlWriter(path) as writer:
        writer.write({"q": "中文"})
        assert read_jsonl(path) == [{"q": "中文"}]  # readable while the writer is open
    assert "中文" in path.read_text(encoding="utf-8")  # non-ASCII kept as text
