"""GSM8K accuracy from generated answers, extracted the way lm-eval's gsm8k tasks report it.

strict    lm-eval gsm8k "strict-match": the number after `#### `; failing that, gsm8k-cot's
          "The answer is N". Nothing found: wrong.
flexible  lm-eval "flexible-extract": the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`.
Both are compared with the gold number after lm-eval's exact_match clean-up (commas, `$`
and a trailing period removed). Few-shot examples, when asked for, come from the end of the
file and are left out of the scored items (only the test split is available here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
STRICT_COT = re.compile(r"The answer is (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# lm-eval's exact_match regexes_to_ignore for gsm8k.
IGNORE = (re.compile(r","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
# lm-eval stops generation at these; our server has one stop list for every client, so the
# same cut is made here, on the text.
UNTIL = ("Question:", "</s>", "<|im_end|>")
ZERO_SHOT_HINT = "Solve it step by step, then give the final line as \"#### <number>\"."


@dataclass(frozen=True)
class Problem:
    index: int  # line number in the file, 0-based
    question: str
    answer: str  # the full worked solution, ending in "#### <number>"

    @property
    def gold(self) -> str:
        found = STRICT.search(self.answer)
        if found is None:
            raise LlmserveError(f"GSM8K line {self.index + 1}: answer has no '#### <number>'")
        return normalize(found.group(1))


def load_problems(path: Path) -> list[Problem]:
    if not path.is_file():
        raise LlmserveError(f"GSM8K file {str(path)!r} does not exist")
    problems = []
    with path.open(encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            if line.strip():
                record = json.loads(line)
                problems.append(Problem(index, record["question"], record["answer"]))
    return problems


def normalize(text: str) -> str:
    for pattern in IGNORE:
        text = pattern.sub("", text)
    return text.strip().lower()


def cut(response: str) -> str:
    for marker in UNTIL:
        response = response.split(marker, 1)[0]
    return response


def extract_strict(response: str) -> str | None:
    text = cut(response)
    found = STRICT.search(text) or STRICT_COT.search(text)
    return normalize(found.group(1)) if found else None


def extract_flexible(response: str) -> str | None:
    matches = FLEXIBLE.findall(cut(response))
    if not matches:
        return None
    last = matches[-1]
    return normalize(next(group for group in last if group))


def split_shots(problems: list[Problem], shots: int, limit: int | None) -> tuple[
        list[Problem], list[Problem]]:
    """(few-shot examples, problems to score): examples from the end, never scored."""
    if shots < 0:
        raise LlmserveError(f"--gsm8k-shots must be 0 or more, got {shots}")
    if shots >= len(problems):
        raise LlmserveError(f"--gsm8k-shots {shots} leaves no GSM8K problem to score")
    examples = problems[len(problems) - shots:] if shots else []
    scored = problems[: len(problems) - shots]
    return examples, scored[:limit] if limit is not None else scored


def build_prompt(problem: Problem, examples: list[Problem]) -> str:
    """lm-eval's "Question: ...\\nAnswer:" format; zero-shot adds a hint about the format."""
    parts = [f"Question: {e.question}\nAnswer: {e.answer}\n\n" for e in examples]
    parts.append(f"Question: {problem.question}\nAnswer:")
    if not examples:
        return f"{ZERO_SHOT_HINT}\n\n{''.join(parts)}"
    return "".join(parts)


def score(problems: list[Problem], responses: list[str]) -> dict[str, Any]:
    """Accuracy under both extractions, and per-item records for the details file."""
    items = []
    for problem, response in zip(problems, responses, strict=True):
        strict, flexible = extract_strict(response), extract_flexible(response)
        items.append({
            "index": problem.index,
            "gold": problem.gold,
            "strict": strict,
            "flexible": flexible,
            "strict_correct": strict == problem.gold,
            "flexible_correct": flexible == problem.gold,
            "response": response,
        })
    n = len(items)
    return {
        "n": n,
        "strict": sum(i["strict_correct"] for i in items) / n if n else None,
        "flexible": sum(i["flexible_correct"] for i in items) / n if n else None,
        "items": items,
    }
