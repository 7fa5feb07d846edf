"""The /v1 endpoints on the engine /predict uses: chat completions, completions, models.

Each request goes through what /predict's does: admission (MAX_WAITING_PROMPTS), a
generation cancelled when the client goes or REQUEST_TIMEOUT passes (guard.py), and the
app's handlers for a too long prompt or a dead engine. Requests to both endpoints enter the
same engine, which batches them together. Answer shaping (llmserve.shaping): BUDGET_HINT
applies to every request (N: its max_tokens); post-processing to non-streamed answers only;
LENGTH_ROUTER does not apply (the client sets max_tokens).
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from llmserve.engines.base import (
    Delta,
    Engine,
    Generation,
    Prompt,
    RawText,
    Sampling,
    TokenIds,
)
from llmserve.engines.guard import ClientGone, TimedOut, generate, guarded
from llmserve.engines.structured import StructuredSpec
from llmserve.server.openai.auth import require_key
from llmserve.server.openai.errors import OpenAIError, openai_error
from llmserve.server.openai.logprobs import Streamed
from llmserve.server.openai.models import (
    adapter_cards,
    adapter_for,
    check_model,
    model_card,
)
from llmserve.server.openai.objects import Answer
from llmserve.server.openai.requests import ChatRequest, Common, CompletionRequest, parse_body
from llmserve.server.openai.streaming import EventStream, close, events, first_delta
from llmserve.server.openai.tools import ToolAnswer
from llmserve.server.routes.guard import CLIENT_CLOSED, RETRY_AFTER_S
from llmserve.server.routes.predict import timing_headers
from llmserve.server.state import EngineDep, Overloaded, Service, ServiceDep
from llmserve.shaping.apply import shaped_generate
from llmserve.shaping.hint import hinted

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


@router.get("/models")
async def list_models(service: ServiceDep) -> dict[str, Any]:
    created = int(service.model_dir.stat().st_mtime) if service.model_dir.exists() else 0
    cards = [model_card(service, created), *adapter_cards(service, created)]
    return {"object": "list", "data": cards}


@router.post("/chat/completions")
async def chat_completions(request: Request, service: ServiceDep, engine: EngineDep) -> Response:
    body = parse_body(await request.body(), ChatRequest)
    spec, mode = body.constraint()
    answer = ToolAnswer(check_model(service, body.model), chat=True, mode=mode)
    return await respond(request, service, engine, body, answer, [body.conversation()], spec)


@router.post("/completions")
async def completions(request: Request, service: ServiceDep, engine: EngineDep) -> Response:
    body = parse_body(await request.body(), CompletionRequest)
    answer = Answer(check_model(service, body.model), chat=False)
    limit = service.settings.max_batch_prompts
    if len(body.prompts) > limit:
        raise OpenAIError(
            400, f"prompt has {len(body.prompts)} items; at most {limit} (MAX_BATCH_PROMPTS)",
            "prompt",
        )  # fmt: skip
    if body.stream and isinstance(body.prompt, list):  # as the schema says, even for one item
        raise OpenAIError(400, "stream=true takes one prompt string, not a list", "stream")
    prompts: list[Prompt] = [
        RawText(p) if isinstance(p, str) else TokenIds(tuple(p)) for p in body.prompts
    ]
    return await respond(request, service, engine, body, answer, prompts, body.structured_spec())


async def respond(
    request: Request,
    service: Service,
    engine: Engine,
    body: Common,
    answer: Answer,
    prompts: list[Prompt],
    structured: StructuredSpec | None = None,
) -> Response:
    """Generate `prompts` (admitted, guarded) and answer whole or as a stream."""
    sampling = body.sampling(service.sampling, service.settings.max_model_len)
    sampling = sampling.replace(
        adapter=adapter_for(service, answer.model), structured=structured
    )
    choices = len(prompts) * sampling.n  # what the engine decodes, and admission counts
    limit = service.settings.front_waiting_prompts
    if choices > limit:  # it could never be admitted: not a 503 to retry
        raise OpenAIError(400, f"{len(prompts)} prompt(s) x n={sampling.n} make {choices} "
                          f"choices; at most {service.settings.front_waiting_limit()}",
                          "n")  # fmt: skip
    timeout = service.settings.request_timeout
    try:
        with ExitStack() as admission:
            admission.enter_context(service.admit(choices))
            if body.stream:  # shaping: only the budget hint (no post-processing of a stream)
                prompt = hinted(prompts[0], sampling.max_tokens, service.settings)
                return await start_stream(
                    request, engine, sampling, timeout, answer, prompt, body, admission
                )
            work = shaped_generate(
                partial(generate, engine), prompts, sampling, service.settings, route=False
            )
            result = await guarded(request, work, timeout)
    except Overloaded as exc:
        return openai_error(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    except TimedOut as exc:
        return openai_error(504, str(exc))
    return JSONResponse(complete(answer, body, prompts, result), headers=timing_headers(result))


def complete(answer: Answer, body: Common, prompts: list[Prompt], result: Generation) -> Any:
    """The whole answer; completions with echo put each prompt's text before its answer (a
    token-id prompt's text is its tokens' texts, as the engine decoded them)."""
    if isinstance(body, ChatRequest):
        return answer.complete(result, logprobs=bool(body.logprobs),
                               top_logprobs=body.top_logprobs or 0)  # fmt: skip
    if not isinstance(body, CompletionRequest):
        return answer.complete(result)
    echo: list[str] | None = None
    if body.echo:
        # per prompt: its first choice's (all n choices of a prompt share its tokens)
        rows = (result.prompt_logprobs or [])[:: result.n] or [None] * len(prompts)
        echo = [
            p.text if isinstance(p, RawText) else "".join(t.token for t in row or [])
            for p, row in zip(prompts, rows, strict=True)
        ]
    return answer.complete(result, echo, logprobs=body.logprobs is not None)


async def start_stream(
    request: Request,
    engine: Engine,
    sampling: Sampling,
    timeout: float | None,
    answer: Answer,
    prompt: Prompt,
    body: Common,
    admission: ExitStack,
) -> Response:
    """Read the first delta here (errors still get their status), then hand the stream and
    the admission to the response, which releases both when it ends."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    stream = engine.stream(prompt, sampling)
    first: Delta | None = await guarded(request, first_delta(engine, stream), timeout)
    held = admission.pop_all()

    async def cleanup() -> None:
        try:
            await close(body_events)
            await close(stream)
        finally:
            held.close()

    body_events = events(answer, first, stream, engine, body.include_usage, deadline,
                         sampling.n, streamed_logprobs(body))  # fmt: skip
    return EventStream(body_events, cleanup)


def streamed_logprobs(body: Common) -> Streamed | None:
    """The shape of each streamed chunk's logprobs, where the request asked for them."""
    if isinstance(body, ChatRequest):
        return Streamed(chat_shape=True, top=body.top_logprobs or 0) if body.logprobs else None
    if isinstance(body, CompletionRequest) and body.logprobs is not None:
        return Streamed(chat_shape=False)
    return None
