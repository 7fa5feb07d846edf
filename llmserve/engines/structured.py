"""Structured output as the engine seam carries it: one constraint per request (a JSON
schema, any JSON object, a regex, a choice list or a grammar). An engine whose backend cannot
compile one raises base.StructuredRefused (the HTTP layer's 400, naming the request field).

Each engine translates a StructuredSpec with its own library: vLLM's StructuredOutputsParams
(llmserve.engines.vllm.structured), llama-cpp-python's grammars
(llmserve.engines.llamacpp.grammar).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["json", "json_object", "regex", "choice", "grammar"]


@dataclass(frozen=True)
class StructuredSpec:
    """`value`: the schema as JSON text (json), the pattern (regex), the choices as a JSON
    list (choice), the grammar text (grammar), "" (json_object). `param`: the request field
    it came from, named by a refusal (e.g. "response_format.json_schema.schema")."""

    kind: Kind
    value: str = ""
    param: str = "response_format"

    def schema(self) -> Any:
        return json.loads(self.value)

    def choices(self) -> list[str]:
        return list(json.loads(self.value))
