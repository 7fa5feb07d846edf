"""Load question/reference pairs from jsonl or .docx, and pick the split to evaluate.

Formats (one file, one format per line; lines may mix the jsonl shapes):
  * {"id", "split", "messages": [{"role": "user", ...}, {"role": "assistant", ...}]}
  * {"question": ..., "answer": ...}   or   {"prompt": ..., "reference": ...}
  * .docx whose paragraphs read `问题：...` then `答案：...`; an answer runs on over the
    following paragraphs until the next `问题`.
"id" and "split" are optional everywhere. Without an id an item is named by its place
(`L<line>` / `Q<n>`), which is stable as long as the file is, so --resume still works.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError

ALL_SPLITS = "all"


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    reference: str
    split: str | None  # None: the item belongs to no split
    where: str  # "file:line" (or "file:paragraph"), for error messages


def load_items(path: Path) -> list[Item]:
    """Every item in the file; an unreadable or empty file is a LlmserveError."""
    if not path.is_file():
        raise LlmserveError(f"data file {str(path)!r} does not exist")
    items = _load_docx(path) if path.suffix.lower() == ".docx" else _load_jsonl(path)
    if not items:
        raise LlmserveError(f"{path}: no items (empty dataset)")
    _check_unique_ids(items)
    return items


def select(items: list[Item], split: str, limit: int | None) -> list[Item]:
    """The items to evaluate, in file order.

    The split rule: when any item carries a split, `split` keeps only the items whose split
    equals it (items without one belong to no split and are left out); when no item carries
    a split, the data is unsplit and every item is kept. `all` keeps everything.
    """
    chosen = items
    if split != ALL_SPLITS and any(item.split is not None for item in items):
        chosen = [item for item in items if item.split == split]
        if not chosen:
            found = sorted({item.split for item in items if item.split is not None})
            raise LlmserveError(f"no items in split {split!r}; the data has splits {found}")
    if limit is not None:
        chosen = chosen[:limit]
    return chosen


def has_splits(items: Iterable[Item]) -> bool:
    return any(item.split is not None for item in items)


# --- jsonl -----------------------------------------------------------------------------


def _load_jsonl(path: Path) -> list[Item]:
    items = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue  # blank lines (a trailing newline, a separator) carry nothing
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise LlmserveError(f"{where}: not valid JSON ({error.msg})") from None
            items.append(_item_from_record(record, where, default_id=f"L{number}"))
    return items


def _item_from_record(record: Any, where: str, default_id: str) -> Item:
    if not isinstance(record, dict):
        raise LlmserveError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        question, reference = _from_messages(record["messages"], where)
    elif "question" in record or "answer" in record:
        question, reference = _field(record, "question", where), _field(record, "answer", where)
    elif "prompt" in record or "reference" in record:
        question, reference = _field(record, "prompt", where), _field(record, "reference", where)
    else:
        keys = ", ".join(sorted(record)) or "none"
        raise LlmserveError(
            f"{where}: expected messages, question/answer or prompt/reference; keys: {keys}"
        )
    split = record.get("split")
    if split is not None and not isinstance(split, str):
        raise LlmserveError(f"{where}: split must be a string, got {split!r}")
    item_id = record.get("id", default_id)
    if not isinstance(item_id, str | int) or isinstance(item_id, bool):
        raise LlmserveError(f"{where}: id must be a string or an integer, got {item_id!r}")
    return Item(str(item_id), question, reference, split, where)


def _field(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LlmserveError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _from_messages(messages: Any, where: str) -> tuple[str, str]:
    """The question is the last user turn, the reference the assistant turn that ends it."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise LlmserveError(f"{where}: messages must be a list of objects")
    if not messages or messages[-1].get("role") != "assistant":
        raise LlmserveError(f"{where}: messages must end with an assistant turn (the reference)")
    users = [m for m in messages[:-1] if m.get("role") == "user"]
    if not users:
        raise LlmserveError(f"{where}: messages have no user turn (the question)")
    return _field(users[-1], "content", where), _field(messages[-1], "content", where)


# --- docx ------------------------------------------------------------------------------

# `问题：` / `答案：` with a full-width or ASCII colon; "回答" is accepted as a synonym.
_QUESTION = re.compile(r"^\s*问题\s*[：:]\s*")
_ANSWER = re.compile(r"^\s*(?:答案|回答)\s*[：:]\s*")


def _load_docx(path: Path) -> list[Item]:
    import docx  # python-docx; imported here because only .docx data needs it

    try:
        paragraphs = [p.text for p in docx.Document(str(path)).paragraphs]
    except Exception as error:  # python-docx raises several unrelated types on bad files
        raise LlmserveError(f"{path}: not a readable .docx ({error})") from None
    items: list[Item] = []
    question: list[str] | None = None
    answer: list[str] | None = None
    start = 0

    def finish() -> None:
        if question is None:
            return
        where = f"{path}:paragraph {start}"
        if answer is None:
            raise LlmserveError(f"{where}: question has no 答案：paragraph after it")
        record = {"question": "\n".join(question).strip(), "answer": "\n".join(answer).strip()}
        items.append(_item_from_record(record, where, default_id=f"Q{len(items) + 1}"))

    for number, text in enumerate(paragraphs, start=1):
        if _QUESTION.match(text):
            finish()
            question, answer, start = [_QUESTION.sub("", text, count=1)], None, number
        elif _ANSWER.match(text):
            if question is None:
                raise LlmserveError(f"{path}:paragraph {number}: 答案 before any 问题")
            if answer is not None:
                raise LlmserveError(f"{path}:paragraph {number}: second 答案 for one 问题")
            answer = [_ANSWER.sub("", text, count=1)]
        elif answer is not None:
            answer.append(text)  # the answer continues until the next question
        elif question is not None:
            question.append(text)  # a question may span paragraphs before its answer
        # Text before the first question (a title, an introduction) is not data.
    finish()
    return items


def _check_unique_ids(items: list[Item]) -> None:
    seen: dict[str, str] = {}
    for item in items:
        if item.id in seen:
            raise LlmserveError(
                f"{item.where}: duplicate id {item.id!r} (first at {seen[item.id]})"
            )
        seen[item.id] = item.where
