"""The OpenAI-compatible API (/v1) over real HTTP (uvicorn in a thread) with the fake engine:
the openai SDK as the client where it fits, httpx for raw and bad requests. Runs in seconds;
the real-engine proof is tests/http/test_openai_sdk.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from llmserve.engines.base import RawText, TokenIds
from llmserve.server.app import create_app
from llmserve.settings import Settings
from tests.asgi import serve_in_thread
from tests.fake_engine import FakeEngine, FakeEngineFactory
from tests.waiting import wait_app_ready, wait_for

MODEL = "tiny-chat"  # the model directory's name: the served name without MODEL_ID
KEY = "sk-test-9c1e7a-not-a-real-key"
USER = [{"role": "user", "content": "hello there"}]


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    model_dir = tmp_path / MODEL
    model_dir.mkdir(exist_ok=True)
    base: dict[str, Any] = {"model_dir": model_dir, "max_model_len": 1024, "max_new_tokens": 32}
    return Settings(**{**base, **values})


@contextmanager
def serve(
    settings: Settings, factory: FakeEngineFactory | None = None
) -> Iterator[tuple[str, FakeEngineFactory, FastAPI]]:
    factory = factory or FakeEngineFactory()
    app = create_app(settings, engine_factory=factory)
    with serve_in_thread(app, lifespan="on") as url:
        wait_app_ready(app)
        yield url, factory, app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeEngineFactory]]:
    with serve(make_settings(tmp_path_factory.mktemp("v1"))) as (url, factory, _):
        yield url, factory


@pytest.fixture
def url(served: tuple[str, FakeEngineFactory]) -> str:
    return served[0]


@pytest.fixture
def engine(served: tuple[str, FakeEngineFactory]) -> FakeEngine:
    return served[1].engine


@pytest.fixture
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="EMPTY", max_retries=0) as client:
        yield client


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None,
                        code: str | None = None) -> str:  # fmt: skip
    """The response is `status` with exactly OpenAI's error body; returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "\n" not in error["message"]
    if status == 401:
        assert error["type"] == "authentication_error"
    elif status < 500:
        assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert error["code"] == code, error
    return str(error["message"])


def sse_events(response: httpx.Response) -> list[str]:
    """The `data:` payloads of a server-sent event stream, in order."""
    lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line.removeprefix("data: ") for line in lines]


# --- answers ---------------------------------------------------------------------------------


def test_models_lists_the_served_model(sdk: openai.OpenAI, http: httpx.Client) -> None:
    (card,) = sdk.models.list().data
    assert (card.id, card.object, card.owned_by) == (MODEL, "model", "llmserve")
    assert isinstance(card.created, int)
    assert http.get("/info").json()["model"] == MODEL


def test_chat_completion(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    reply = sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Be brief."},  # OpenAI's newer "system"
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Count to three"},
        ],
        max_tokens=7,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        seed=42,
        extra_body={"top_k": 5, "some_future_field": {"ignored": True}},
    )
    call = engine.calls[-1]
    assert call.prompts == [[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Count to three"},
    ]]  # fmt: skip
    sampling = call.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.stop,
            sampling.seed, sampling.top_k) == (7, 0.5, 0.9, ("END",), 42, 5)  # fmt: skip
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert reply.id.startswith("chatcmpl-") and len(reply.id) == len("chatcmpl-") + 32
    (choice,) = reply.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content == "echo: system: Be brief. | user: Hi"  # 7 words
    assert choice.finish_reason == "length" and choice.logprobs is None
    assert reply.usage is not None
    assert (reply.usage.completion_tokens, reply.usage.prompt_tokens) == (7, 14)
    assert reply.usage.total_tokens == 21


def test_chat_defaults_and_limits(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    """No sampling fields: the service's defaults (MAX_NEW_TOKENS=32). max_completion_tokens
    wins over max_tokens; a limit over MAX_MODEL_LEN is lowered to it; no `model`: the served
    one."""
    reply = sdk.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert engine.calls[-1].sampling == engine.sampling
    assert reply.choices[0].message.content == "echo: user: hello there"
    assert reply.choices[0].finish_reason == "stop"
    sdk.chat.completions.create(
        model=MODEL, messages=USER, max_tokens=3, max_completion_tokens=2  # type: ignore[arg-type]
    )
    assert engine.calls[-1].sampling.max_tokens == 2
    sdk.completions.create(model=MODEL, prompt="x", max_tokens=10**12)
    assert engine.calls[-1].sampling.max_tokens == 1024


def test_chat_content_parts_are_joined(http: httpx.Client, engine: FakeEngine) -> None:
    parts = [{"type": "text", "text": "hello "}, {"type": "text", "text": "world"}]
    response = http.post("/v1/chat/completions",
                         json={"messages": [{"role": "user", "content": parts}]})  # fmt: skip
    assert response.status_code == 200, response.text
    assert engine.calls[-1].prompts == [[{"role": "user", "content": "hello world"}]]
    assert response.json()["model"] == MODEL


def test_completion_prompt_is_raw(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    """The prompt reaches the engine as RawText: no chat template, no SYSTEM_PROMPT."""
    prompt = "Q: 2+2?\nA: 4\n\nQ: 3+3?\nA:"
    reply = sdk.completions.create(model=MODEL, prompt=prompt, max_tokens=4, stop="\n\n")
    assert engine.calls[-1].prompts == [RawText(prompt)]
    assert engine.calls[-1].sampling.stop == ("\n\n",)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    (choice,) = reply.choices
    assert (choice.index, choice.text, choice.finish_reason) == (0, "echo: raw: Q: 2+2?", "length")
    assert reply.usage is not None and reply.usage.completion_tokens == 4


def test_completion_list_prompt(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    reply = sdk.completions.create(model=MODEL, prompt=["one", "two words"])
    assert engine.calls[-1].prompts == [RawText("one"), RawText("two words")]  # one batch
    assert [(c.index, c.text) for c in reply.choices] == [
        (0, "echo: raw: one"), (1, "echo: raw: two words")
    ]  # fmt: skip
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 7)


def test_completion_token_id_prompts(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    """A list of ints is one tokenized prompt, a list of such lists a batch (lm-eval's)."""
    reply = sdk.completions.create(model=MODEL, prompt=[[5, 6], [7]], max_tokens=3)
    assert engine.calls[-1].prompts == [TokenIds((5, 6)), TokenIds((7,))]
    assert [(c.index, c.text) for c in reply.choices] == [(0, "echo: ids: 5"), (1, "echo: ids: 7")]
    sdk.completions.create(model=MODEL, prompt=[1, 2, 3], max_tokens=1)
    assert engine.calls[-1].prompts == [TokenIds((1, 2, 3))]


def test_echo_and_logprobs_reach_the_engine(http: httpx.Client, engine: FakeEngine) -> None:
    """echo asks for the prompt's logprobs with `logprobs` alternatives; max_tokens 0 too."""
    body = {"prompt": [3, 4], "echo": True, "logprobs": 2, "max_tokens": 0}
    assert http.post("/v1/completions", json=body).status_code == 200
    sampling = engine.calls[-1].sampling
    assert (sampling.logprobs, sampling.prompt_logprobs, sampling.max_tokens) == (2, 2, 0)
    http.post("/v1/completions", json={"prompt": "x", "logprobs": 0, "max_tokens": 1})
    sampling = engine.calls[-1].sampling
    assert (sampling.logprobs, sampling.prompt_logprobs) == (0, None)


def test_tokenizer_endpoints(http: httpx.Client) -> None:
    """vLLM's /tokenize, /detokenize and /tokenizer_info, answered by the engine (the fake's
    tokens are characters), errors in OpenAI's shape."""
    body = http.post("/tokenize", json={"prompt": "ab", "return_token_strs": True}).json()
    assert body == {"count": 7, "max_model_len": body["max_model_len"],
                    "tokens": [ord(c) for c in "raw: ab"], "token_strs": list("raw: ab")}
    assert http.post("/detokenize", json={"tokens": [104, 105]}).json() == {"prompt": "hi"}
    assert http.get("/tokenizer_info").json()["eos_token"] == "</s>"
    bad = http.post("/tokenize", json={"prompt": "a", "messages": [{"role": "user",
                                                                    "content": "b"}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "prompt"
    bad = http.post("/detokenize", json={"tokens": [-1]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"


def test_the_model_directory_path_is_accepted(http: httpx.Client, url: str) -> None:
    """What `vllm serve <dir>` would call the model: a vLLM client works unchanged."""
    model_dir = httpx.get(f"{url}/info").json()["engine"]["model_dir"]
    response = http.post("/v1/completions", json={"model": model_dir, "prompt": "x"})
    assert response.status_code == 200 and response.json()["model"] == MODEL


def test_predict_is_untouched(http: httpx.Client) -> None:
    response = http.post("/predict", json={"prompt": "hi"})
    assert response.json() == {"response": "echo: hi"}
    assert http.post("/predict", content=b"{").json()["error"].startswith("body is not valid")
    assert http.get("/nope").json() == {"error": "no such path: /nope"}


# --- streaming -------------------------------------------------------------------------------


def test_chat_stream_matches_the_whole_answer(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    chunks = list(
        sdk.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked


def test_chat_stream_with_usage(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL, messages=USER, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}, max_tokens=3,
        )
    )  # fmt: skip
    *answer, last = chunks
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 3)
    assert last.usage.total_tokens == 6
    assert answer[-1].choices[0].finish_reason == "length"


def test_completion_stream(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    chunks = list(sdk.completions.create(model=MODEL, prompt="a b c", stream=True,
                                         stream_options={"include_usage": True}))  # fmt: skip
    assert engine.calls[-1].prompts == [RawText("a b c")]
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "echo: raw: a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.object == "text_completion" for c in chunks)


def test_the_stream_ends_with_done(http: httpx.Client) -> None:
    body = {"messages": USER, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                        "finish_reason": "stop"}  # fmt: skip


def test_streamed_chat_logprobs_are_the_whole_answers(sdk: openai.OpenAI) -> None:
    """Each chunk carries its tokens' logprobs in chat's shape; per choice (n=2) they add up
    to the non-streamed answer's."""
    request: dict[str, Any] = {"model": MODEL, "messages": USER, "logprobs": True,
                               "top_logprobs": 1, "n": 2, "max_tokens": 3}  # fmt: skip
    whole = sdk.chat.completions.create(**request)
    chunks = list(sdk.chat.completions.create(**request, stream=True))
    for choice in whole.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        streamed = [entry for c in chunks for part in c.choices if part.index == choice.index
                    and part.logprobs is not None for entry in part.logprobs.content or []]
        assert [e.model_dump() for e in streamed] == [
            e.model_dump() for e in choice.logprobs.content
        ]
        first = next(c.choices[0] for c in chunks if c.choices[0].delta.content)
        assert first.logprobs is not None and len(first.logprobs.content or []) == 1
        assert first.logprobs.content[0].top_logprobs[0].token == "echo:"  # type: ignore[index]


def test_streamed_completion_logprobs_continue_the_offsets(http: httpx.Client) -> None:
    """The legacy shape per chunk, text offsets continuing across a choice's chunks: the
    chunks, concatenated, are the whole answer's object (n=2: per choice)."""
    body = {"prompt": "a b", "logprobs": 1, "n": 2, "max_tokens": 4}
    whole = http.post("/v1/completions", json=body).json()
    with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        chunks = [json.loads(e) for e in sse_events(response)[:-1]]
    assert chunks[0]["choices"][0]["logprobs"] == {
        "tokens": ["echo:"], "token_logprobs": [-0.1], "top_logprobs": [{"echo:": -0.1,
        "alt": -5.0}], "text_offset": [0]}  # fmt: skip
    for choice in whole["choices"]:
        joined: dict[str, list[Any]] = {key: [] for key in choice["logprobs"]}
        for chunk in chunks:
            part = chunk["choices"][0]
            if part["index"] == choice["index"] and part["logprobs"] is not None:
                for key, values in part["logprobs"].items():
                    joined[key] += values
        assert joined == choice["logprobs"]
        assert joined["text_offset"] == [0, 5, 10, 12]  # "echo:", " raw:", " a", " b"


def held_settings(tmp_path: Path, **values: Any) -> tuple[Settings, FakeEngineFactory]:
    """A fake engine whose generate waits, and whose stream stalls after its first word,
    until a release that never comes: only an abort ends them."""
    return make_settings(tmp_path, **values), FakeEngineFactory(options={"hold": asyncio.Event()})


def test_a_client_that_leaves_mid_stream_aborts_the_engine_stream(tmp_path: Path) -> None:
    settings, factory = held_settings(tmp_path)
    with serve(settings, factory) as (url, _, app), httpx.Client(base_url=url) as http:
        engine = factory.engine
        body = {"messages": USER, "stream": True, "max_tokens": 1000}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            first = [next(lines) for _ in range(4)]  # role chunk, blank, first word, blank
            assert json.loads(first[2].removeprefix("data: "))["choices"][0]["delta"] == {
                "content": "echo:"
            }
            assert engine.unfinished == 1 and app.state.service.admitted == 1
        # The connection is closed: the server cancels the stream, the engine aborts it.
        wait_for(lambda: engine.unfinished == 0, "the engine stream to be aborted")
        assert engine.cancelled == 1
        wait_for(lambda: app.state.service.admitted == 0, "the admission to be released")


def test_a_client_that_leaves_before_the_answer_aborts_the_generation(tmp_path: Path) -> None:
    settings, factory = held_settings(tmp_path)
    with serve(settings, factory) as (url, _, _app):
        engine = factory.engine
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/completions", json={"prompt": "x"}, timeout=0.5)
        wait_for(lambda: engine.cancelled == 1 and engine.unfinished == 0, "the abort")


def test_overload_and_timeout_in_openai_shape(tmp_path: Path) -> None:
    settings, factory = held_settings(
        tmp_path, max_batch_prompts=1, max_waiting_prompts=1, request_timeout=0.3
    )
    with serve(settings, factory) as (url, _, _app), httpx.Client(base_url=url) as http:
        response = http.post("/v1/chat/completions", json={"messages": USER})
        assert_openai_error(response, 504)  # generate is held past REQUEST_TIMEOUT
        assert factory.engine.cancelled == 1 and factory.engine.unfinished == 0
        with http.stream("POST", "/v1/chat/completions",
                         json={"messages": USER, "stream": True}) as stream:  # fmt: skip
            busy = http.post("/v1/completions", json={"prompt": "x"})  # the stream is held
            message = assert_openai_error(busy, 503)
            assert "MAX_WAITING_PROMPTS=1" in message and busy.headers["retry-after"] == "1"
            events = sse_events(stream)  # the held stream times out: an error event, [DONE]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["type"] == "timeout_error"
        assert factory.engine.unfinished == 0


# --- bad requests ----------------------------------------------------------------------------

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
OK_CHAT: dict[str, Any] = {"model": MODEL, "messages": USER}


def chat(**fields: Any) -> dict[str, Any]:
    return {**OK_CHAT, **fields}


# (path, body, status, param, code, words in the message)
BAD: list[tuple[str, Any, int, str | None, str | None, str]] = [
    (CHAT, b"{", 400, None, None, "body is not valid JSON"),
    (CHAT, b"", 400, None, None, "body is not valid JSON"),
    (CHAT, b"[1, 2]", 400, None, None, "body must be a JSON object, got list"),
    (CHAT, b'{"messages": NaN}', 400, None, None, "NaN is not a JSON value"),
    (CHAT, b'{"max_tokens": 1' + b"0" * 5000 + b"}", 400, None, None, "5001 digits"),
    (CHAT, b"[" * 5000 + b"]" * 5000, 400, None, None, "nested 5000 levels deep"),
    (CHAT, {"model": MODEL}, 400, "messages", None, "messages: Field required"),
    (CHAT, chat(messages=[]), 400, "messages", None, "at least 1 item"),
    (CHAT, chat(messages="hi"), 400, "messages", None, "valid list"),
    (CHAT, chat(messages=[{"role": "robot", "content": "x"}]), 400, "messages", None,
     "messages[0].role"),
    (CHAT, chat(messages=[{"role": "user", "content": None}]), 400, "messages", None,
     "messages[0].content"),
    (CHAT, chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     400, "messages", None, "messages[0].content[0].type: Input should be 'text'"),
    (CHAT, chat(messages=[{"role": "user", "content": "bad \ud800 text"}]), 400, "messages",
     None, "messages[0].content: has an unpaired surrogate at position 4"),
    (CHAT, chat(max_tokens=0), 400, "max_tokens", None, "greater than or equal to 1"),
    (CHAT, chat(max_tokens=-5), 400, "max_tokens", None, "max_tokens"),
    (CHAT, chat(max_tokens="10"), 400, "max_tokens", None, "valid integer"),
    (CHAT, chat(max_tokens=2.5), 400, "max_tokens", None, "valid integer"),
    (CHAT, chat(max_completion_tokens=0), 400, "max_completion_tokens", None, "greater"),
    (CHAT, chat(temperature="hot"), 400, "temperature", None, "valid number"),
    (CHAT, chat(temperature=2.5), 400, "temperature", None, "less than or equal to 2"),
    (CHAT, chat(temperature=-1), 400, "temperature", None, "greater than or equal to 0"),
    (CHAT, chat(temperature=True), 400, "temperature", None, "valid number"),
    (CHAT, chat(top_p=0), 400, "top_p", None, "greater than 0"),
    (CHAT, chat(top_p=1.5), 400, "top_p", None, "less than or equal to 1"),
    (CHAT, chat(stop=["ok", 3]), 400, "stop", None, "stop[1]: Input should be a valid string"),
    (CHAT, chat(stop=""), 400, "stop", None, "stop"),
    (CHAT, chat(stop=["s"] * 17), 400, "stop", None, "at most 16"),
    (CHAT, chat(seed=-1), 400, "seed", None, "seed"),
    (CHAT, chat(seed=2**64), 400, "seed", None, "seed"),
    (CHAT, chat(seed="1"), 400, "seed", None, "valid integer"),
    (CHAT, chat(n=129), 400, "n", None, "less than or equal to 128"),
    (CHAT, chat(n=0), 400, "n", None, "greater than or equal to 1"),
    (CHAT, chat(stream="yes"), 400, "stream", None, "valid boolean"),
    (CHAT, chat(stream_options={"include_usage": 1}), 400, "stream_options", None, "boolean"),
    (CHAT, chat(top_logprobs=2), 400, "top_logprobs", None, "needs logprobs=true"),
    (CHAT, chat(logprobs=True, top_logprobs=21), 400, "top_logprobs", None, "less than or equal"),
    (CHAT, chat(frequency_penalty=3), 400, "frequency_penalty", None, "less than or equal"),
    (CHAT, chat(model="gpt-4o"), 404, "model", "model_not_found", "'gpt-4o' is not served"),
    (CHAT, chat(model=5), 400, "model", None, "valid string"),
    (CHAT, chat(messages=[{"role": "user", "content": "w " * 1100}]), 400, "messages",
     "context_length_exceeded", "limit is 1023"),
    (COMPLETIONS, {}, 400, "prompt", None, "prompt: Field required"),
    (COMPLETIONS, {"prompt": ""}, 400, "prompt", None, "at least 1 character"),
    (COMPLETIONS, {"prompt": 7}, 400, "prompt", None, "prompt"),
    (COMPLETIONS, {"prompt": ["ok", 7]}, 400, "prompt", None, "prompt[1]"),
    (COMPLETIONS, {"prompt": [1, -2]}, 400, "prompt", None, "prompt"),
    (COMPLETIONS, {"prompt": [[1], []]}, 400, "prompt", None, "prompt"),
    (COMPLETIONS, {"prompt": ["a", "\udc00"]}, 400, "prompt", None,
     "prompt[1]: has an unpaired surrogate"),
    (COMPLETIONS, {"prompt": "x", "echo": True, "stream": True}, 400, "echo", None,
     "echo=true is not supported with stream=true"),
    (COMPLETIONS, {"prompt": "x", "logprobs": 21}, 400, "logprobs", None,
     "less than or equal to 20"),
    (COMPLETIONS, {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", None,
     "max_tokens=0 needs echo=true"),
    (COMPLETIONS, {"prompt": "x", "best_of": 3}, 400, "best_of", None, "best_of=3"),
    (COMPLETIONS, {"prompt": "x", "n": 1000}, 400, "n", None, "less than or equal to 128"),
    (COMPLETIONS, {"prompt": ["a", "b"], "stream": True}, 400, "stream", None, "one prompt"),
    (COMPLETIONS, {"prompt": "x", "model": "nope"}, 404, "model", "model_not_found", "nope"),
]  # fmt: skip


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@pytest.mark.parametrize(("path", "body", "status", "param", "code", "words"), BAD)
def test_bad_requests_get_openai_errors(
    http: httpx.Client, path: str, body: Any, status: int, param: str | None,
    code: str | None, words: str,
) -> None:  # fmt: skip
    response = http.post(path, content=encode(body), headers={"content-type": "application/json"})
    message = assert_openai_error(response, status, param, code)
    assert words in message, message


def test_framework_errors_under_v1_in_openai_shape(http: httpx.Client) -> None:
    assert "no such path: /v1/nope" in assert_openai_error(http.get("/v1/nope"), 404)
    response = http.delete("/v1/models")
    assert "method DELETE" in assert_openai_error(response, 405)
    assert response.headers["allow"] == "GET"
    assert_openai_error(http.get("/v1/chat/completions"), 405)


def test_a_body_over_the_limit_in_openai_shape(tmp_path: Path) -> None:
    with serve(make_settings(tmp_path, max_body_bytes=1000)) as (url, _, _app):
        big = {"prompt": "a" * 2000}
        response = httpx.post(f"{url}/v1/completions", json=big)
        assert "MAX_BODY_BYTES" in assert_openai_error(response, 413)
        chunked = httpx.post(f"{url}/v1/completions", content=iter([encode(big)]))
        assert "MAX_BODY_BYTES" in assert_openai_error(chunked, 413)
        size = len(encode({"prompt": "a" * 2000}))
        response = httpx.post(f"{url}/predict", content=encode({"prompt": "a" * 2000}))
        assert response.json() == {  # /predict keeps its shape
            "error": f"request body is too large: {size} bytes; at most 1000 (MAX_BODY_BYTES)"
        }


def test_the_sdk_raises_the_status_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model=MODEL, messages=USER, n=129)  # type: ignore[arg-type]
    assert bad.value.param == "n"


# --- API_KEY ---------------------------------------------------------------------------------


def test_api_key_guards_v1_only(tmp_path: Path) -> None:
    with serve(make_settings(tmp_path, api_key=KEY)) as (url, _, _app):
        refused: list[dict[str, str]] = [
            {}, {"authorization": "Bearer wrong"}, {"authorization": KEY},
            {"authorization": "Basic " + KEY}, {"authorization": "Bearer"},
        ]  # fmt: skip
        for headers in refused:
            for method, path in (("GET", "/v1/models"), ("POST", CHAT), ("POST", COMPLETIONS)):
                response = httpx.request(method, url + path, headers=headers, json=OK_CHAT)
                message = assert_openai_error(response, 401, None, "invalid_api_key")
                assert KEY not in message
        with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as sdk:
            assert sdk.models.list().data[0].id == MODEL
            reply = sdk.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == "echo: user: hello there"
        with (
            openai.OpenAI(base_url=f"{url}/v1", api_key="EMPTY", max_retries=0) as sdk,
            pytest.raises(openai.AuthenticationError),
        ):
            sdk.models.list()
        # /, /info and /predict stay open (the grader sends no key); the key is never shown.
        assert httpx.get(f"{url}/").status_code == 200
        assert httpx.post(f"{url}/predict", json={"prompt": "hi"}).status_code == 200
        info = httpx.get(f"{url}/info")
        assert info.json()["settings"]["api_key"] == "**********"
        for page in (info, httpx.get(f"{url}/openapi.json"), httpx.get(f"{url}/")):
            assert KEY not in page.text


def test_without_api_key_v1_is_open(http: httpx.Client) -> None:
    assert http.get("/v1/models").status_code == 200
    assert http.get("/v1/models", headers={"authorization": "Bearer anything"}).status_code == 200
