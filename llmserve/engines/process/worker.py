"""One engine replica in a process of its own, serving the engine seam over loopback HTTP.

    python -m llmserve.engines.process.worker --port P --model-dir DIR --parent-pid PID

The settings come from the environment the parent passed down (so ENGINE_REPLICAS still
divides the device memory); the engine is the one ENGINE names, built before the port opens,
so the parent's readiness check (GET /health 200) means "ready to generate". Routes, all
internal (the parent's ProcessEngine is the only client):

  GET  /health    {"dead", "unfinished"}; 503 once the engine died
  GET  /facts     the engine's facts
  POST /generate  {"prompts", "sampling"} -> a Generation; the client leaving aborts it
  POST /stream    {"prompt", "sampling"} -> NDJSON deltas; the client leaving aborts it

Engine errors are {"error": kind, ...} bodies (llmserve.engines.process.wire). The worker ends
when its parent does (a pidfd watch), so a SIGKILLed server leaves no engine behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from llmserve.engines import load_engine_factory
from llmserve.engines.base import (
    Engine,
    EngineDead,
    EngineError,
    PromptRejected,
    PromptTooLong,
    StructuredRefused,
)
from llmserve.engines.guard import ClientGone, engine_failure, guarded
from llmserve.engines.process import wire
from llmserve.engines.process.client import KEEPALIVE_S, raise_open_files_limit
from llmserve.engines.replicas import unfinished
from llmserve.lifeline import exit_with_parent

STATUS = {PromptTooLong: 413, PromptRejected: 400, EngineDead: 503, StructuredRefused: 400}


def error_response(error: EngineError) -> JSONResponse:
    return JSONResponse(wire.encode_error(error), status_code=STATUS.get(type(error), 500))


def worker_app(engine: Engine) -> FastAPI:
    app = FastAPI(openapi_url=None)

    @app.get("/health")
    def health() -> Response:
        body = {"dead": engine.dead, "unfinished": unfinished(engine)}
        return JSONResponse(body, status_code=503 if engine.dead else 200)

    @app.get("/facts")
    def facts() -> dict[str, Any]:
        return {**engine.facts(), "pid": os.getpid()}

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Response:
        body = await request.json()
        try:
            tokens = await engine.tokenize(
                wire.decode_prompt(body["prompt"]), bool(body["add_special_tokens"])
            )
        except EngineError as exc:
            return error_response(exc)
        return JSONResponse(dataclasses.asdict(tokens))

    @app.post("/detokenize")
    async def detokenize(request: Request) -> Response:
        try:
            text = await engine.detokenize((await request.json())["ids"])
        except EngineError as exc:
            return error_response(exc)
        return JSONResponse({"text": text})

    @app.get("/tokenizer_info")
    async def tokenizer_info() -> dict[str, Any]:
        return await engine.tokenizer_info()

    @app.post("/generate")
    async def generate(request: Request) -> Response:
        try:
            body = await request.json()
        except ClientDisconnect:
            return Response(status_code=499)
        prompts = [wire.decode_prompt(p) for p in body["prompts"]]
        sampling = wire.decode_sampling(body.get("sampling"))
        try:
            result = await guarded(request, engine.generate(prompts, sampling), None)
        except ClientGone:
            return Response(status_code=499)
        except Exception as exc:
            failure = engine_failure(engine, exc)
            if isinstance(failure, EngineError):
                return error_response(failure)
            raise
        return JSONResponse(wire.encode_generation(result))

    @app.post("/stream")
    async def stream(request: Request) -> Response:
        body = await request.json()
        deltas = engine.stream(
            wire.decode_prompt(body["prompt"]), wire.decode_sampling(body.get("sampling"))
        )
        try:  # the first delta before the response starts: a refusal gets its status code
            first = await anext(deltas)
        except Exception as exc:
            await deltas.aclose()
            failure = engine_failure(engine, exc)
            if isinstance(failure, EngineError):
                return error_response(failure)
            raise

        async def lines() -> AsyncIterator[bytes]:
            # Starlette cancels this when the client disconnects; aclose aborts the request.
            try:
                yield (json.dumps(wire.encode_delta(first)) + "\n").encode()
                async for delta in deltas:
                    yield (json.dumps(wire.encode_delta(delta)) + "\n").encode()
            except EngineError as exc:
                yield (json.dumps(wire.encode_error(exc)) + "\n").encode()
            finally:
                await deltas.aclose()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from llmserve.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    exit_with_parent(args.parent_pid)
    raise_open_files_limit()
    settings = load_settings()
    engine = load_engine_factory(settings.engine)(settings, args.model_dir)
    try:
        uvicorn.run(
            worker_app(engine),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            timeout_keep_alive=int(10 * KEEPALIVE_S),  # the client closes idle ones first
            backlog=4096,
        )
    finally:
        engine.shutdown()


if __name__ == "__main__":
    main()
