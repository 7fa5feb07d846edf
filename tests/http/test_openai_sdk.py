"""The OpenAI-compatible API with a real client (the openai SDK) against the real engines: the
session servers (tests/conftest.py: real vLLM, and real llama.cpp where it is installed; the
real model; real uvicorn on a free port). Every test runs against both (`any_server`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import Server, engine_unfinished

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "Name three colors."}]


@pytest.fixture
def model(any_server: Server) -> str:
    with any_server.client() as http:
        return str(http.get("/info").json()["model"])


@pytest.fixture
def sdk(any_server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{any_server.url}/v1", api_key="EMPTY", max_retries=0,
                       timeout=300) as client:  # fmt: skip
        yield client


def test_models_list(sdk: openai.OpenAI, model: str) -> None:
    (card,) = sdk.models.list().data
    assert card.id == model and card.object == "model"


def test_chat_with_and_without_streaming(sdk: openai.OpenAI, model: str) -> None:
    whole = sdk.chat.completions.create(
        model=model, messages=QUESTION, max_tokens=24, temperature=0  # type: ignore[arg-type]
    )
    text = whole.choices[0].message.content
    assert text and text.strip()
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 24
    chunks = list(
        sdk.chat.completions.create(
            model=model, messages=QUESTION, max_tokens=24, temperature=0,  # type: ignore[arg-type]
            stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # greedy: the same tokens, streamed
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason


def test_completions_are_raw(sdk: openai.OpenAI, model: str) -> None:
    """A completion prompt is not templated: fewer prompt tokens than the same text as a chat
    turn (the template adds its role markers), and a list answers each prompt in order."""
    prompt = "The capital of France is"
    one = sdk.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0)
    chat = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=1
    )
    assert one.usage is not None and chat.usage is not None
    assert one.usage.prompt_tokens < chat.usage.prompt_tokens
    assert one.choices[0].text.strip()
    listed = sdk.completions.create(
        model=model, prompt=[prompt, "1, 2, 3,"], max_tokens=8, temperature=0
    )
    assert [c.index for c in listed.choices] == [0, 1]
    assert listed.choices[0].text == one.choices[0].text
    streamed = sdk.completions.create(
        model=model, prompt=prompt, max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == one.choices[0].text


def test_a_streaming_client_that_leaves_stops_the_engine(any_server: Server, model: str) -> None:
    """A stream of up to ~1000 tokens (ignore_eos: it cannot end early by itself) is read for
    a few chunks, then the client disconnects: the engine drops the request (its unfinished
    count returns to 0) instead of generating the rest.

    The count is read while the iteration is still open: leaving `iter_lines()` (break)
    finalizes httpcore's stream generator, which closes the connection at once, so a read
    after the break already sees the abort (what session 4 took for a miscount)."""
    body = {
        "model": model, "prompt": "Count: 1, 2, 3,", "max_tokens": 1000, "ignore_eos": True,
        "temperature": 0, "stream": True,
    }  # fmt: skip
    with any_server.client() as http:
        assert engine_unfinished(http) == 0
        with (
            httpx.Client(base_url=any_server.url, timeout=300) as streaming,
            streaming.stream("POST", "/v1/completions", json=body) as response,
        ):
            assert response.status_code == 200
            received = 0
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line.removeprefix("data: "))
                    assert chunk["choices"][0]["finish_reason"] is None
                    received += 1
                if received == 5:
                    assert engine_unfinished(http) == 1  # generating, for a client still reading
                    break
        # The connection is closed here. Proof by step count, not by time: a 64-token request
        # sent now shares the engine's steps with the gone one, which still had ~1000 tokens
        # to go; had it not been aborted, it would still be unfinished when this one returns.
        short = {**body, "max_tokens": 64, "stream": False}
        assert http.post("/v1/completions", json=short).json()["usage"]["completion_tokens"] == 64
        assert engine_unfinished(http) == 0, "the engine kept generating for a gone client"
        assert http.get("/").status_code == 200


def test_predict_and_chat_at_once(any_server: Server, sdk: openai.OpenAI, model: str) -> None:
    """Both endpoints share the engine: concurrent requests to both are served (together, by
    the engine's continuous batching), with the answers each gives alone."""
    prompt = "What is 2 + 2?"

    def predict() -> str:
        with any_server.client() as http:
            response = http.post("/predict", json={"prompt": prompt})
            assert response.status_code == 200, response.text
            return str(response.json()["response"])

    def chat() -> str:
        reply = sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}],
            max_tokens=32, temperature=0,
        )  # fmt: skip
        return reply.choices[0].message.content or ""

    alone = predict(), chat()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(f) for f in (predict, chat) * 4]
        together = [f.result() for f in futures]
    assert together == [*alone] * 4
    assert alone[0] == alone[1]  # the same template, sampling and MAX_NEW_TOKENS=32
