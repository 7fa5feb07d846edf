"""A StructuredSpec as a llama.cpp GBNF grammar (llama-cpp-python's JSON-schema converter and
JSON grammar), checked by llama.cpp's own parser before the request enters the decode loop,
and added first in the request's sampler chain (llama_sampler_init_grammar)."""

from __future__ import annotations

import json
from typing import Any

from llmserve.engines.base import StructuredRefused
from llmserve.engines.llamacpp.schema import schema_gbnf
from llmserve.engines.structured import StructuredSpec

ROOT = b"root"


def gbnf(spec: StructuredSpec) -> str:
    """The grammar for `spec`, or StructuredRefused naming what llama.cpp cannot take."""
    from llama_cpp.llama_grammar import JSON_GBNF

    if spec.kind == "json":
        return schema_gbnf(spec.value, spec.param)
    if spec.kind == "json_object":
        return str(JSON_GBNF)
    if spec.kind == "choice":  # a GBNF string literal escapes as a JSON string does
        return "root ::= " + " | ".join(json.dumps(choice) for choice in spec.choices())
    if spec.kind == "grammar":
        return spec.value
    raise StructuredRefused(spec.param, f"the llama.cpp engine has no {spec.kind} constraint")


def grammar_sampler(lib: Any, vocab: Any, text: str) -> Any:
    """llama.cpp's grammar sampler for `text`; None when llama.cpp cannot parse it."""
    sampler = lib.llama_sampler_init_grammar(vocab, text.encode(), ROOT)
    return sampler or None


def checked_gbnf(lib: Any, vocab: Any, spec: StructuredSpec | None) -> str | None:
    """The spec's grammar once llama.cpp parsed it (StructuredRefused if it does not)."""
    if spec is None:
        return None
    text = gbnf(spec)
    sampler = grammar_sampler(lib, vocab, text)
    if sampler is None:
        raise StructuredRefused(spec.param, "llama.cpp cannot parse the grammar it gives")
    lib.llama_sampler_free(sampler)
    return text
