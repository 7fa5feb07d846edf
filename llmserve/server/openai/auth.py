"""API_KEY: when set, every /v1 request must carry `Authorization: Bearer <key>` (a 401 in
OpenAI's shape otherwise). The key is compared in constant time and never echoed."""

from __future__ import annotations

import secrets

from fastapi import Request

from llmserve.server.openai.errors import OpenAIError


def require_key(request: Request) -> None:
    """A router dependency: passes when API_KEY is unset or the bearer token matches it."""
    key = request.app.state.service.settings.api_key
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise OpenAIError(
            401,
            "missing API key: this server needs `Authorization: Bearer <API_KEY>`",
            code="invalid_api_key",
        )
    expected = key.get_secret_value().encode()
    if not secrets.compare_digest(token.strip().encode(), expected):
        raise OpenAIError(401, "incorrect API key", code="invalid_api_key")
