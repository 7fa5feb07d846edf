"""JSON schema to llama.cpp GBNF: llama-cpp-python's converter, with integer bounds added and
every keyword it would ignore refused by name.

llama-cpp-python's SchemaConverter (0.3.36) skips `minimum`/`maximum` ("TODO" in its source)
and other keywords without a word: on the 2-core AVX2 EPYC, 133 of 200 structured answers
validated, and the failures kept in the record broke their schema's integer bounds, each with
a 200 (`scripts/structured_bench.py`, 2026-12-07); with the bounds below, 200 of 200.
Here an integer's bounds become a digit grammar (the ranges of each digit count, as
llama.cpp's own C++ converter does), and any other keyword that would change which answers are
valid but is not enforced is a StructuredRefused naming it and where it is.
"""

from __future__ import annotations

import json
import math
from typing import Any

from llmserve.engines.base import StructuredRefused

# What the converter enforces (its `visit`) or what only annotates.
ENFORCED = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems",
    "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
    "definitions", "pattern", "minLength", "maxLength", "format",
}  # fmt: skip
ANNOTATIONS = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "readOnly",
    "writeOnly", "deprecated", "strict", "name",
}  # fmt: skip
NESTED = ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties")
INTEGER_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
# The converter's integer rule allows 16 digits; unbounded sides keep that limit.
MAX_DIGITS = 16


def _bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integer the schema's bounds allow (None: unbounded)."""
    lows = [math.ceil(schema["minimum"])] if "minimum" in schema else []
    highs = [math.floor(schema["maximum"])] if "maximum" in schema else []
    if "exclusiveMinimum" in schema:
        lows.append(math.floor(schema["exclusiveMinimum"]) + 1)
    if "exclusiveMaximum" in schema:
        highs.append(math.ceil(schema["exclusiveMaximum"]) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _same_length(low: str, high: str) -> list[str]:
    """GBNF sequences for the digit strings of one length from `low` to `high`."""
    if low == high:
        return [" ".join(f'"{d}"' for d in low)]
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    rest = len(low) - 1
    if low[0] == high[0]:
        return [f'"{low[0]}" ({" | ".join(_same_length(low[1:], high[1:]))})']
    out, first, last = [], int(low[0]), int(high[0])
    if low[1:] != "0" * rest:  # low's leading digit, the rest from low's up
        out.append(f'"{low[0]}" ({" | ".join(_same_length(low[1:], "9" * rest))})')
        first += 1
    if high[1:] != "9" * rest:
        last -= 1
    if first <= last:  # whole leading digits: any rest
        out.append(f"[{first}-{last}]" + " [0-9]" * rest)
    if high[1:] != "9" * rest:  # high's leading digit, the rest up to high's
        out.append(f'"{high[0]}" ({" | ".join(_same_length("0" * rest, high[1:]))})')
    return out


def _non_negative(low: int, high: int | None) -> list[str]:
    """GBNF sequences for the integers from `low` to `high` (None: any, up to MAX_DIGITS)."""
    out = []
    top = high if high is not None else 10**MAX_DIGITS - 1
    for digits in range(len(str(low)), len(str(top)) + 1):
        start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        end = min(top, 10**digits - 1)
        if start <= end:
            out += _same_length(str(start), str(end))
    return out


def integer_rule(low: int | None, high: int | None) -> str:
    """A GBNF rule body for the integers in [low, high] (None: unbounded on that side)."""
    if low is not None and high is not None and low > high:
        raise ValueError(f"no integer is in [{low}, {high}]")
    parts = []
    if low is None or low < 0:  # negatives: "-" then their magnitudes
        magnitude_low = 1 if high is None or high >= 0 else -high
        magnitude_high = None if low is None else -low
        parts += [f'"-" ({p})' for p in _non_negative(magnitude_low, magnitude_high)]
    if high is None or high >= 0:
        parts += _non_negative(max(low or 0, 0), high)
    return "(" + " | ".join(f"({p})" for p in parts) + ") space"


def refusal(schema: Any, path: str = "") -> str | None:
    """The first keyword of `schema` the converter would not enforce, with its path."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            if (found := refusal(item, f"{path}[{index}]")) is not None:
                return found
        return None
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        where = f"{path}.{key}" if path else key
        integer = schema.get("type") == "integer"
        if key in INTEGER_BOUNDS and not integer:
            return f"'{key}' on a non-integer ({where})"
        if key == "format" and value not in FORMATS:
            return f"format {value!r} ({where})"
        if key not in ENFORCED | ANNOTATIONS | INTEGER_BOUNDS:
            return f"'{key}' ({where})"
        if key in ("properties", "$defs", "definitions"):
            for name, sub in value.items():
                if (found := refusal(sub, f"{where}.{name}")) is not None:
                    return found
        elif key in NESTED and (found := refusal(value, where)) is not None:
            return found
    return None


def schema_gbnf(schema_text: str, param: str) -> str:
    """The GBNF for a JSON schema (text) of request field `param`, or StructuredRefused
    naming what llama.cpp would not enforce or cannot take."""
    from llama_cpp.llama_grammar import RESERVED_NAMES, SchemaConverter

    class Converter(SchemaConverter):  # type: ignore[misc]
        def visit(self, schema: dict[str, Any], name: str) -> str:
            if schema.get("type") == "integer" and INTEGER_BOUNDS & set(schema):
                rule = name + "-" if name in RESERVED_NAMES else name or "root"
                return str(self._add_rule(rule, integer_rule(*_bounds(schema))))
            return str(super().visit(schema, name))

    try:
        schema = json.loads(schema_text)
        found = refusal(schema)
        if found is not None:
            raise StructuredRefused(param, f"the llama.cpp engine does not enforce {found}")
        converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        converter.visit(converter.resolve_refs(schema, "stdin"), "")
        return str(converter.format_grammar())
    except StructuredRefused:
        raise
    except Exception as error:  # the converter raises bare Exception, ValueError, KeyError
        raise StructuredRefused(
            param, f"llama.cpp's JSON-schema converter cannot take it: {error!r}"
        ) from error
