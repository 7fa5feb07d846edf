"""vLLM's tokenizer endpoints, beside /v1: POST /tokenize (text or chat messages), POST
/detokenize, GET /tokenizer_info. lm-eval's remote tokenizer (`tokenizer_backend=auto` with
local-completions) reads them; the engine's own tokenizer answers, so the ids are those
generation reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from llmserve.engines.base import Prompt, RawText
from llmserve.server.openai.auth import require_key
from llmserve.server.openai.errors import OpenAIError
from llmserve.server.openai.models import check_model
from llmserve.server.openai.requests import Message, Strict, Text, TokenId, parse_body
from llmserve.server.state import EngineDep, ServiceDep

router = APIRouter(dependencies=[Depends(require_key)])


class TokenizeRequest(Strict):
    """Text (`prompt`) or a conversation (`messages`, through the chat template)."""

    model: str | None = None
    prompt: Text | None = None
    messages: Annotated[list[Message], Field(min_length=1)] | None = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True
    return_token_strs: bool = False

    def unsupported(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise OpenAIError(400, "send exactly one of prompt and messages", "prompt")
        if self.messages is not None and not self.add_generation_prompt:
            raise OpenAIError(400, "add_generation_prompt=false is not supported: messages "
                              "are tokenized as generation reads them", "add_generation_prompt")

    def as_prompt(self) -> Prompt:
        if self.messages is not None:
            return [m.chat_message() for m in self.messages]
        return RawText(self.prompt or "")


class DetokenizeRequest(Strict):
    model: str | None = None
    tokens: list[TokenId]


@router.post("/tokenize")
async def tokenize(request: Request, service: ServiceDep, engine: EngineDep) -> dict[str, Any]:
    body = parse_body(await request.body(), TokenizeRequest)
    check_model(service, body.model)
    tokens = await engine.tokenize(body.as_prompt(), body.add_special_tokens)
    return {"count": len(tokens.ids), "max_model_len": service.settings.max_model_len,
            "tokens": tokens.ids, "token_strs": tokens.strs if body.return_token_strs else None}


@router.post("/detokenize")
async def detokenize(request: Request, service: ServiceDep, engine: EngineDep) -> dict[str, Any]:
    body = parse_body(await request.body(), DetokenizeRequest)
    check_model(service, body.model)
    return {"prompt": await engine.detokenize(body.tokens)}


@router.get("/tokenizer_info")
async def tokenizer_info(engine: EngineDep) -> dict[str, Any]:
    return await engine.tokenizer_info()
