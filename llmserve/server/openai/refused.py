"""OpenAI request fields this service does not serve and that would change the answer: each
is declared here (so `extra="ignore"` cannot drop it silently) and refused by name with a 400
when it asks for something. FIELD_ROLES says, for every field of the request models, whether
it is honoured, refused or without effect on the answer (tests/http/test_openai_fields.py walks
the models and the openai SDK's parameters against it)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from llmserve.server.openai.errors import OpenAIError
from llmserve.server.openai.structured import Strict

# Accepted and ignored: they never change the answer (bookkeeping, caching, billing).
NO_EFFECT = frozenset({
    "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "prompt_cache_options",
})  # fmt: skip


# The value of a refused field that asks for nothing: OpenAI's default (no bias, text only,
# no functions, no suffix); null never asks either.
BENIGN: dict[str, Any] = {"logit_bias": {}, "modalities": ["text"], "functions": [], "suffix": ""}


def _asks(name: str, value: Any) -> bool:
    """Whether a refused field's value asks for something."""
    return value is not None and not (name in BENIGN and value == BENIGN[name])


class Refusing(Strict):
    def refuse(self) -> None:
        for name in type(self).refused_fields():
            value = getattr(self, name)
            if _asks(name, value):
                raise OpenAIError(400, f"{name} is not supported (got {_shown(value)})", name)

    @classmethod
    def refused_fields(cls) -> list[str]:
        return [name for klass in cls.__mro__ if klass.__dict__.get("REFUSED")
                for name in klass.__dict__["REFUSED"]]  # fmt: skip


def _shown(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."


class RefusedChat(Refusing):
    REFUSED: ClassVar[tuple[str, ...]] = (
        "logit_bias", "functions", "function_call", "audio", "modalities",
        "prediction", "reasoning_effort", "verbosity", "web_search_options", "moderation",
    )  # fmt: skip

    logit_bias: dict[str, Any] | None = Field(None, description="Not served: a 400 unless {}.")
    functions: Any = Field(None, description="Deprecated by OpenAI; not served: use tools.")
    function_call: Any = Field(None, description="Deprecated by OpenAI; not served.")
    audio: Any = Field(None, description="Not served: a 400.")
    modalities: Any = Field(None, description='Only ["text"] is served.')
    prediction: Any = Field(None, description="Not served: a 400.")
    reasoning_effort: Any = Field(None, description="Not served: a 400.")
    verbosity: Any = Field(None, description="Not served: a 400.")
    web_search_options: Any = Field(None, description="Not served: a 400.")
    moderation: Any = Field(None, description="Not served: a 400.")


class RefusedCompletion(Refusing):
    REFUSED: ClassVar[tuple[str, ...]] = ("logit_bias", "suffix")

    logit_bias: dict[str, Any] | None = Field(None, description="Not served: a 400 unless {}.")
    suffix: Any = Field(None, description="Not served: a 400.")


NULL: dict[str, Any] = {"type": "null"}
# The OpenAPI description of each refused field: what is served (null, or OpenAI's default),
# so that a body the schema allows is one the server answers (tests/http/test_fuzz.py).
SERVED: dict[str, dict[str, Any]] = {
    name: {"anyOf": [{"const": value}, NULL]} for name, value in BENIGN.items()
}


def served_schemas(names: list[str]) -> dict[str, dict[str, Any]]:
    return {name: SERVED.get(name, {"anyOf": [NULL]}) for name in names}
