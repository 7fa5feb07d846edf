"""JSON schema to GBNF for the llama.cpp engine: integer bounds as digit grammars, and every
keyword the converter would not enforce refused by name. (The grammars are run by llama.cpp
itself in tests/engines/test_engine_llamacpp.py.)"""

from __future__ import annotations

import json
import re

import pytest

from llmserve.engines.base import StructuredRefused
from llmserve.engines.llamacpp.schema import integer_rule, refusal, schema_gbnf

pytest.importorskip("llama_cpp")


def as_regex(rule: str) -> re.Pattern[str]:
    """The rule's language as a Python regex: it uses only literals, classes, groups, |."""
    body = rule.removesuffix(" space")
    return re.compile(re.sub(r'"(.)"', r"\1", body).replace(" ", ""))


@pytest.mark.parametrize("low, high", [(1, 5), (0, 99999), (-40, 120), (7, 7), (-9, -3),
                                       (10, 1000), (None, 12), (-5, None), (95, 1003)])
def test_an_integer_rule_takes_exactly_the_integers_in_bounds(
    low: int | None, high: int | None
) -> None:
    pattern = as_regex(integer_rule(low, high))
    lo = -2000 if low is None else low
    hi = 2000 if high is None else high
    for value in range(min(lo, -2000) - 50, max(hi, 2000) + 50, 1 if hi - lo < 5000 else 7):
        inside = (low is None or value >= low) and (high is None or value <= high)
        assert bool(pattern.fullmatch(str(value))) is inside, value
    for text in ("01", "-0", "+1", "1.0", ""):
        assert not pattern.fullmatch(text), text


def test_bounds_that_exclude_every_integer_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"\[6, 5\]"):
        integer_rule(6, 5)


@pytest.mark.parametrize("schema, named", [
    ({"type": "number", "maximum": 3}, "'maximum' on a non-integer (maximum)"),
    ({"type": "string", "format": "email"}, "format 'email' (format)"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "'uniqueItems'"),
    ({"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 2}}},
     "'multipleOf' (properties.a.multipleOf)"),
    ({"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]}, "'not' (anyOf[1].not)"),
])  # fmt: skip
def test_keywords_the_converter_would_ignore_are_refused_by_name(
    schema: dict, named: str
) -> None:
    assert named in (refusal(schema) or "")
    with pytest.raises(StructuredRefused, match=re.escape(named)):
        schema_gbnf(json.dumps(schema), "response_format")


def test_annotations_and_enforced_keywords_pass() -> None:
    schema = {"title": "t", "type": "object", "description": "d", "required": ["n"],
              "properties": {"n": {"type": "integer", "minimum": 1, "exclusiveMaximum": 6},
                             "s": {"type": "string", "maxLength": 4, "format": "date"}}}
    assert refusal(schema) is None
    grammar = schema_gbnf(json.dumps(schema), "response_format")
    assert "[1-5]" in grammar  # n: 1 to 5
