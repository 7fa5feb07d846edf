"""The served model's name, as /v1/models lists it and requests name it.

The name is MODEL_ID when set (what a client of a ModelScope deployment knows), else the
model directory's name (e.g. "SmolLM2-135M-Instruct"). A request may also name the directory
itself (its path, or its name when MODEL_ID is set): what `vllm serve <dir>` calls the model,
so a client configured for vLLM works unchanged. A request without `model` gets this one.
With ENABLE_LORA, each LORA_MODULES adapter is a model of its own too (vLLM's way): a
request naming it is answered by the base model with that adapter.
"""

from __future__ import annotations

from typing import Any

from llmserve.server.openai.errors import OpenAIError
from llmserve.server.state import Service


def served_name(service: Service) -> str:
    return service.settings.model_id or service.model_dir.name


def accepted_names(service: Service) -> set[str]:
    base = {served_name(service), service.model_dir.name, str(service.model_dir)}
    return base | set(adapter_names(service))


def adapter_names(service: Service) -> list[str]:
    """The LoRA adapters served (LORA_MODULES names), each a model of its own on /v1."""
    return list(getattr(service.settings, "lora_modules", {}) or {})


def adapter_for(service: Service, name: str) -> str | None:
    """The adapter a /v1 request's model name picks: an adapter's name, else None (base)."""
    return name if name in adapter_names(service) else None


def check_model(service: Service, requested: str | None) -> str:
    """The name answers carry; OpenAIError 404 model_not_found for another model."""
    name = served_name(service)
    if requested is not None and requested in adapter_names(service):
        return requested
    if requested is not None and requested not in accepted_names(service):
        raise OpenAIError(
            404,
            f"model {requested!a} is not served here; this server serves {name!r} "
            "(GET /v1/models)",
            "model",
            "model_not_found",
        )
    return name


def model_card(service: Service, created: int) -> dict[str, Any]:
    return {"id": served_name(service), "object": "model", "created": created,
            "owned_by": "llmserve"}


def adapter_cards(service: Service, created: int) -> list[dict[str, Any]]:
    """/v1/models entries of the LoRA adapters (vLLM's shape: `parent` is the base)."""
    return [
        {"id": name, "object": "model", "created": created, "owned_by": "llmserve",
         "parent": served_name(service)}
        for name in adapter_names(service)
    ]
