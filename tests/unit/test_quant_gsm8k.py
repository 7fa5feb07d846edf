"""GSM8K answer extraction on hand-written responses, as lm-eval's gsm8k tasks extract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmserve.errors import LlmserveError
from llmserve.quantize.gsm8k import (
    Problem,
    build_prompt,
    extract_flexible,
    extract_strict,
    load_problems,
    score,
    split_shots,
)


@pytest.mark.parametrize(
    ("response", "strict", "flexible"),
    [
        ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", "18", "18"),
        ("She pays $1,234.\n#### 1,234", "1234", "1234"),  # commas and $ are cleaned away
        ("#### -5", "-5", "-5"),
        ("So 3 + 4 = 7. The answer is 7.", "7", "7"),  # gsm8k-cot's strict phrasing
        ("The answer is $42.", None, "42"),  # `$` breaks the strict pattern, not flexible
        ("First 12, then 30. So she has 30 apples left", None, "30"),  # last number wins
        ("It costs $18.50 in total.", None, "18.50"),
        ("I do not know.", None, None),
        ("#### 18\n\nQuestion: what is 2+2?\nAnswer: #### 4", "18", "18"),  # cut at Question:
        ("5 apples<|im_end|>and 99 more", None, "5"),
    ],
)
def test_extraction(response: str, strict: str | None, flexible: str | None) -> None:
    assert extract_strict(response) == strict
    assert extract_flexible(response) == flexible


def test_score_counts_each_extraction_against_the_gold() -> None:
    problems = [Problem(0, "q0", "work\n#### 18"), Problem(1, "q1", "work\n#### 1,000"),
                Problem(2, "q2", "work\n#### 3")]
    result = score(problems, ["#### 18", "it is 1000 dollars", "The answer is 4."])
    assert result["n"] == 3
    assert result["strict"] == pytest.approx(1 / 3)
    assert result["flexible"] == pytest.approx(2 / 3)
    assert [i["flexible_correct"] for i in result["items"]] == [True, True, False]


def test_few_shot_examples_come_from_the_end_and_are_never_scored(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(
        json.dumps({"question": f"q{i}", "answer": f"a{i}\n#### {i}"}) + "\n"
        for i in range(10)))
    problems = load_problems(path)
    examples, scored = split_shots(problems, shots=2, limit=None)
    assert [e.index for e in examples] == [8, 9]
    assert [p.index for p in scored] == list(range(8))
    assert [p.index for p in split_shots(problems, 0, 3)[1]] == [0, 1, 2]
    prompt = build_prompt(scored[0], examples)
    assert prompt.startswith("Question: q8\nAnswer: a8\n#### 8\n\n")
    assert prompt.endswith("Question: q0\nAnswer:")
    with pytest.raises(LlmserveError, match="leaves no GSM8K problem"):
        split_shots(problems, 10, None)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(LlmserveError, match=r"nope\.jsonl"):
        load_problems(tmp_path / "nope.jsonl")
