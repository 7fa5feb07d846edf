"""Data loaders: jsonl shapes, .docx, malformed input, the split rule."""

from __future__ import annotations

import json
from pathlib import Path

import docx
import pytest

from llmserve.dataset import load_items, select
from llmserve.errors import LlmserveError


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def chat(item_id: str, split: str | None, question: str, answer: str) -> dict[str, object]:
    record: dict[str, object] = {
        "id": item_id,
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
    }
    if split is not None:
        record["split"] = split
    return record


def test_messages_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [chat("q1", "tune", "问？", "答。"),
                                             chat("q2", "test", "Q?", "A.")])
    items = load_items(path)
    assert [(i.id, i.split, i.question, i.reference) for i in items] == [
        ("q1", "tune", "问？", "答。"),
        ("q2", "test", "Q?", "A."),
    ]


def test_question_answer_and_prompt_reference_formats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"question": "1+1?", "answer": "2"},
        {"prompt": "2+2?", "reference": "4"},
    ])
    items = load_items(path)
    assert [(i.id, i.question, i.reference, i.split) for i in items] == [
        ("L1", "1+1?", "2", None),
        ("L2", "2+2?", "4", None),
    ]


def test_docx_answers_run_over_paragraphs(tmp_path: Path) -> None:
    document = docx.Document()
    for text in ["常见问题", "问题：什么是RAG？", "答案：检索增强生成。", "它先检索再生成。",
                 "问题: 第二个问题", "答案:第二个答案"]:
        document.add_paragraph(text)
    path = tmp_path / "qa.docx"
    document.save(str(path))
    items = load_items(path)
    assert [(i.id, i.question, i.reference) for i in items] == [
        ("Q1", "什么是RAG？", "检索增强生成。\n它先检索再生成。"),
        ("Q2", "第二个问题", "第二个答案"),
    ]


def test_docx_question_without_answer_names_its_paragraph(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("问题：没有答案的问题")
    path = tmp_path / "bad.docx"
    document.save(str(path))
    with pytest.raises(LlmserveError, match=r"bad\.docx:paragraph 1: .*答案"):
        load_items(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"question": "q"}', "'answer' must be a non-empty string"),
        ('{"text": "q"}', "expected messages, question/answer or prompt/reference"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "must end with an assistant"),
        ('{"question": "q", "answer": "a", "split": 3}', "split must be a string"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "ok", "answer": "fine"}\n\n' + line + "\n")
    with pytest.raises(LlmserveError, match=rf"d\.jsonl:3: .*{message}"):
        load_items(path)


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [chat("q1", "test", "a", "b")] * 2)
    with pytest.raises(LlmserveError, match=r"d\.jsonl:2: duplicate id 'q1'"):
        load_items(path)


def test_empty_dataset_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(LlmserveError, match="no items"):
        load_items(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LlmserveError, match="does not exist"):
        load_items(tmp_path / "nope.jsonl")


def test_split_filters_only_data_with_splits(tmp_path: Path) -> None:
    split = load_items(write_jsonl(tmp_path / "s.jsonl", [
        chat("a", "tune", "q", "r"), chat("b", "test", "q", "r"), chat("c", None, "q", "r"),
    ]))
    assert [i.id for i in select(split, "test", None)] == ["b"]
    assert [i.id for i in select(split, "all", None)] == ["a", "b", "c"]
    with pytest.raises(LlmserveError, match=r"no items in split 'dev'.*\['test', 'tune'\]"):
        select(split, "dev", None)
    unsplit = load_items(write_jsonl(tmp_path / "u.jsonl", [chat("a", None, "q", "r")] ))
    assert [i.id for i in select(unsplit, "test", None)] == ["a"]


def test_limit_keeps_the_first_items(tmp_path: Path) -> None:
    items = load_items(write_jsonl(tmp_path / "d.jsonl", [
        chat(f"q{n}", "test", "q", "r") for n in range(5)
    ]))
    assert [i.id for i in select(items, "test", 2)] == ["q0", "q1"]
