"""`n` choices per prompt and `seed` on /v1 (issue #22).

First the HTTP shape over the fake engine (fast): choice indexes (prompt_index * n + i for a
completions list), usage over all choices with each prompt counted once, streamed chunks
naming their choice with a finish_reason each, the cap on n, and n through shaping and
replicas. Then the real engines (the session servers of tests/conftest.py, the openai SDK):
n=3 with logprobs and top_logprobs on both endpoints, streamed and not, and a seed that makes
sampled answers repeatable, on vLLM and llama.cpp alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmserve.engines.base import Generation, Sampling
from llmserve.engines.replicas import ReplicatedEngine
from llmserve.settings import Settings
from llmserve.shaping.apply import shaped_generate
from llmserve.shaping.settings import ShapingSettings
from tests.conftest import Server
from tests.fake_engine import FakeEngine, FakeEngineFactory
from tests.http.test_openai_http import (
    MODEL,
    USER,
    assert_openai_error,
    make_settings,
    serve,
    sse_events,
)

# --- the HTTP shape, over the fake engine ----------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeEngineFactory]]:
    settings = make_settings(tmp_path_factory.mktemp("n"), max_batch_prompts=4,
                             max_waiting_prompts=8)  # fmt: skip
    with serve(settings) as (url, factory, _):
        yield url, factory


@pytest.fixture
def engine(served: tuple[str, FakeEngineFactory]) -> FakeEngine:
    return served[1].engine


@pytest.fixture
def sdk(served: tuple[str, FakeEngineFactory]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{served[0]}/v1", api_key="EMPTY", max_retries=0) as client:
        yield client


@pytest.fixture
def http(served: tuple[str, FakeEngineFactory]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=30) as client:
        yield client


def chunks_of(http: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_chat_n_choices(sdk: openai.OpenAI, engine: FakeEngine) -> None:
    reply = sdk.chat.completions.create(model=MODEL, messages=USER, n=3,  # type: ignore[arg-type]
                                        max_tokens=2)  # fmt: skip
    assert engine.calls[-1].sampling.n == 3 and len(engine.calls[-1].prompts) == 1
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content == "echo: user:" for c in reply.choices)
    assert all(c.finish_reason == "length" for c in reply.choices)
    assert reply.usage is not None
    # the prompt once ("user: hello there" is 3 words), each choice's 2 tokens
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 6)


def test_completions_index_is_prompt_index_times_n_plus_i(
    sdk: openai.OpenAI, engine: FakeEngine
) -> None:
    reply = sdk.completions.create(model=MODEL, prompt=["a", "b c"], n=2, echo=True)
    assert engine.calls[-1].sampling.n == 2
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert [c.text for c in reply.choices] == [
        "aecho: raw: a",
        "aecho: raw: a",
        "b cecho: raw: b c",
        "b cecho: raw: b c",
    ]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 2 + 3  # "raw: a", "raw: b c": each prompt once
    assert reply.usage.completion_tokens == 2 * 3 + 2 * 4


def test_chat_stream_names_each_choice(http: httpx.Client) -> None:
    body = {"messages": USER, "n": 3, "max_tokens": 3, "stream_options": {"include_usage": True}}
    chunks = chunks_of(http, "/v1/chat/completions", body)
    *answer, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 9
    assert usage["usage"]["prompt_tokens"] == 3
    assert all(len(c["choices"]) == 1 for c in answer)
    roles = [c["choices"][0] for c in answer if "role" in c["choices"][0]["delta"]]
    assert [r["index"] for r in roles] == [0, 1, 2]  # a role chunk per choice, first
    texts: dict[int, str] = {}
    finishes: dict[int, list[str]] = {}
    for chunk in answer:
        choice = chunk["choices"][0]
        texts[choice["index"]] = texts.get(choice["index"], "") + (
            choice["delta"].get("content") or ""
        )
        if choice["finish_reason"] is not None:
            finishes.setdefault(choice["index"], []).append(choice["finish_reason"])
    assert texts == {i: "echo: user: hello" for i in range(3)}
    assert finishes == {i: ["length"] for i in range(3)}  # one finishing chunk per choice


def test_completion_stream_with_n(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.completions.create(model=MODEL, prompt="a b", n=2, stream=True))
    texts = {i: "".join(c.choices[0].text for c in chunks if c.choices[0].index == i)
             for i in range(2)}  # fmt: skip
    assert texts == {0: "echo: raw: a b", 1: "echo: raw: a b"}
    reasons = [(c.choices[0].index, c.choices[0].finish_reason) for c in chunks
               if c.choices[0].finish_reason]  # fmt: skip
    assert sorted(reasons) == [(0, "stop"), (1, "stop")]


def test_named_tool_calls_for_each_choice(http: httpx.Client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"messages": USER, "n": 2, "tools": [tool],
            "tool_choice": {"type": "function", "function": {"name": "f"}}}  # fmt: skip
    reply = http.post("/v1/chat/completions", json=body).json()
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    assert all(c["message"]["tool_calls"][0]["function"]["name"] == "f"
               for c in reply["choices"])  # fmt: skip
    chunks = chunks_of(http, "/v1/chat/completions", body)
    named = [c["choices"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")
             and "id" in c["choices"][0]["delta"]["tool_calls"][0]]  # fmt: skip
    assert [c["index"] for c in named] == [0, 1]  # each choice's call opens with its id


@pytest.mark.parametrize(("body", "words"), [
    ({"prompt": "x", "n": 129}, "less than or equal to 128"),
    ({"prompt": "x", "n": 0}, "greater than or equal to 1"),
    ({"prompt": "x", "n": 1.5}, "valid integer"),
    ({"prompt": ["a", "b", "c"], "n": 3}, "9 choices; at most MAX_WAITING_PROMPTS=8"),
    ({"prompt": "x", "n": 9, "stream": True}, "9 choices; at most MAX_WAITING_PROMPTS=8"),
])  # fmt: skip
def test_too_many_choices_are_a_400_naming_n(
    http: httpx.Client, body: dict[str, Any], words: str
) -> None:
    message = assert_openai_error(http.post("/v1/completions", json=body), 400, "n")
    assert words in message, message


def test_n_is_admitted_as_that_many_prompts(http: httpx.Client) -> None:
    """8 choices fill MAX_WAITING_PROMPTS=8, and a 400 never reaches admission."""
    response = http.post("/v1/completions", json={"prompt": ["a", "b"], "n": 4})
    assert response.status_code == 200 and len(response.json()["choices"]) == 8


def test_the_schema_serves_n_up_to_its_cap(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["properties"]["n"]["anyOf"][0]["maximum"] == 128


# --- the engine seam -------------------------------------------------------------------------


def test_a_choice_is_seeded_seed_plus_its_index() -> None:
    sampling = Sampling(temperature=1.0, seed=7, n=3)
    assert [sampling.choice(i).seed for i in range(3)] == [7, 8, 9]
    assert sampling.choice(2).n == 1
    assert Sampling(n=2).choice(1).seed is None  # unseeded: random, each draw its own
    with pytest.raises(ValueError, match="n=0"):
        Sampling(n=0)


def test_generation_choices_and_usage() -> None:
    result = Generation(["a", "b", "c", "d"], [5, 5, 7, 7], [1, 2, 3, 4],
                        ["stop", "length", "stop", "stop"], 1.0, None, n=2)  # fmt: skip
    assert [(c.index, c.prompt_index, c.text) for c in result.choices] == [
        (0, 0, "a"),
        (1, 0, "b"),
        (2, 1, "c"),
        (3, 1, "d"),
    ]
    assert (result.input_tokens, result.output_tokens) == (12, 10)


def test_shaping_and_replicas_keep_the_choices_in_order(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path, max_model_len=1024, max_new_tokens=8)
    engines = [FakeEngine(settings, tmp_path) for _ in range(2)]
    prompts = ["p0", "p1", "p2"]
    sampling = Sampling(max_tokens=8, n=2)
    result = asyncio.run(ReplicatedEngine(engines).generate(prompts, sampling))
    assert result.n == 2 and result.texts == [f"echo: p{i}" for i in (0, 0, 1, 1, 2, 2)]
    shaped = asyncio.run(shaped_generate(engines[0].generate, prompts, sampling,
                                         ShapingSettings(), route=False))  # fmt: skip
    assert shaped.n == 2 and shaped.texts == result.texts


# --- the real engines (vLLM and llama.cpp) ---------------------------------------------------

STORY = [{"role": "user", "content": "Tell me a short story about a cat."}]


@pytest.fixture
def real(any_server: Server) -> Iterator[tuple[openai.OpenAI, str]]:
    with any_server.client() as http:
        model = str(http.get("/v1/models").json()["data"][0]["id"])
    with openai.OpenAI(base_url=f"{any_server.url}/v1", api_key="EMPTY", max_retries=0,
                       timeout=300) as client:  # fmt: skip
        yield client, model


@pytest.mark.engine
def test_chat_n3_with_logprobs(real: tuple[openai.OpenAI, str]) -> None:
    sdk, model = real
    reply = sdk.chat.completions.create(
        messages=STORY,  # type: ignore[arg-type]
        model=model, n=3, max_tokens=12, temperature=1.0, seed=11, logprobs=True, top_logprobs=2,
    )  # fmt: skip
    assert [c.index for c in reply.choices] == [0, 1, 2]
    counts = []
    for choice in reply.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        content = choice.logprobs.content
        assert "".join(t.token for t in content) == choice.message.content
        assert all(len(t.top_logprobs) == 2 for t in content)
        counts.append(len(content))
    assert reply.usage is not None and reply.usage.completion_tokens == sum(counts)
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) > 1, texts  # seed + i per choice: the samples differ


@pytest.mark.engine
def test_completions_n3_with_logprobs_for_a_list(real: tuple[openai.OpenAI, str]) -> None:
    sdk, model = real
    prompts = ["The capital of France is", "Once upon a time"]
    alone = sdk.completions.create(model=model, prompt=prompts, max_tokens=1)
    reply = sdk.completions.create(model=model, prompt=prompts, n=3, max_tokens=6,
                                   temperature=1.0, seed=5, logprobs=2)  # fmt: skip
    assert [c.index for c in reply.choices] == list(range(6))
    for choice in reply.choices:
        assert choice.logprobs is not None
        assert "".join(choice.logprobs.tokens or []) == choice.text
        assert all(len(top) >= 2 for top in choice.logprobs.top_logprobs or [])
    assert reply.usage is not None and alone.usage is not None
    assert reply.usage.prompt_tokens == alone.usage.prompt_tokens  # each prompt once
    assert reply.usage.completion_tokens == sum(
        len(c.logprobs.tokens or []) for c in reply.choices if c.logprobs
    )
    # echo with n: each choice starts with its prompt's text and the prompt's logprobs
    echoed = sdk.completions.create(model=model, prompt=prompts, n=2, max_tokens=2,
                                    echo=True, logprobs=1)  # fmt: skip
    for choice in echoed.choices:
        assert choice.text.startswith(prompts[choice.index // 2])
        assert choice.logprobs is not None and choice.logprobs.token_logprobs
        assert choice.logprobs.token_logprobs[0] is None


@pytest.mark.engine
@pytest.mark.parametrize("chat", [True, False])
def test_streamed_n3_equals_the_whole_answer(real: tuple[openai.OpenAI, str], chat: bool) -> None:
    """Streamed with a seed, each choice's text is the non-streamed request's choice of the
    same index, and each choice finishes once."""
    sdk, model = real
    common: dict[str, Any] = {"model": model, "n": 3, "max_tokens": 10, "temperature": 1.0,
                              "seed": 3}  # fmt: skip
    texts: dict[int, str] = {0: "", 1: "", 2: ""}
    reasons: list[int] = []
    if chat:
        whole = [c.message.content for c in
                 sdk.chat.completions.create(messages=STORY, **common).choices]  # fmt: skip
        for chunk in sdk.chat.completions.create(messages=STORY, stream=True, **common):
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
                reasons += [choice.index] if choice.finish_reason else []
    else:
        prompt = "Once upon a time"
        whole = [c.text for c in sdk.completions.create(prompt=prompt, **common).choices]
        for piece in sdk.completions.create(prompt=prompt, stream=True, **common):
            for part in piece.choices:
                texts[part.index] += part.text
                reasons += [part.index] if part.finish_reason else []
    assert [texts[i] for i in range(3)] == whole
    assert sorted(reasons) == [0, 1, 2]


Entry = tuple[str, float, dict[str, float]]  # a token, its logprob, its top alternatives


def assert_same_entries(got: list[Entry], expected: list[Entry]) -> None:
    """The same tokens and alternatives, logprobs within 1e-4."""
    assert [token for token, _, _ in got] == [token for token, _, _ in expected]
    for (token, ours, our_top), (_, theirs, their_top) in zip(got, expected, strict=True):
        assert ours == pytest.approx(theirs, abs=1e-4), token
        assert our_top == pytest.approx(their_top, abs=1e-4), token


@pytest.mark.engine
@pytest.mark.parametrize("chat", [True, False])
def test_streamed_logprobs_equal_the_whole_answer(
    real: tuple[openai.OpenAI, str], chat: bool
) -> None:
    """logprobs with stream=true, n=2, greedy and seeded: each choice's chunks carry its
    tokens' logprobs, which, concatenated, are the non-streamed answer's (the legacy text
    offsets continue across the chunks)."""
    sdk, model = real
    common: dict[str, Any] = {"model": model, "n": 2, "max_tokens": 12, "temperature": 0.0,
                              "seed": 7}  # fmt: skip
    got: dict[int, list[Entry]] = {0: [], 1: []}
    texts = {0: "", 1: ""}
    expected: dict[int, list[Entry]] = {}
    if chat:
        common |= {"messages": STORY, "logprobs": True, "top_logprobs": 2}
        for choice in sdk.chat.completions.create(**common).choices:
            assert choice.logprobs is not None and choice.logprobs.content
            expected[choice.index] = [
                (t.token, t.logprob, {a.token: a.logprob for a in t.top_logprobs})
                for t in choice.logprobs.content
            ]
        for chunk in sdk.chat.completions.create(stream=True, **common):
            for part in chunk.choices:
                texts[part.index] += part.delta.content or ""
                for t in part.logprobs.content or [] if part.logprobs else []:
                    assert len(t.top_logprobs) == 2
                    got[part.index].append(
                        (t.token, t.logprob, {a.token: a.logprob for a in t.top_logprobs}))
    else:
        common |= {"prompt": "Once upon a time", "logprobs": 2}
        offsets: dict[int, list[int]] = {0: [], 1: []}
        whole_offsets: dict[int, list[int]] = {}
        for choice in sdk.completions.create(**common).choices:
            lp = choice.logprobs
            assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
            expected[choice.index] = list(zip(lp.tokens, lp.token_logprobs, lp.top_logprobs,
                                              strict=True))  # type: ignore[arg-type]
            whole_offsets[choice.index] = lp.text_offset or []
        for piece in sdk.completions.create(stream=True, **common):
            for part in piece.choices:
                texts[part.index] += part.text
                lp = part.logprobs
                if lp is not None:
                    got[part.index] += zip(lp.tokens or [], lp.token_logprobs or [],
                                           lp.top_logprobs or [], strict=True)  # type: ignore[arg-type]
                    offsets[part.index] += lp.text_offset or []
        assert offsets == whole_offsets
    assert sorted(expected) == [0, 1]
    for index in (0, 1):
        assert_same_entries(got[index], expected[index])
        assert "".join(token for token, _, _ in got[index]) == texts[index]


@pytest.mark.engine
def test_a_seed_makes_sampled_answers_repeatable(real: tuple[openai.OpenAI, str]) -> None:
    sdk, model = real

    def sample(seed: int) -> list[str]:
        reply = sdk.completions.create(model=model, prompt="Once upon a time", max_tokens=16,
                                       temperature=1.0, seed=seed, n=2)  # fmt: skip
        return [c.text for c in reply.choices]

    first = sample(1234)
    assert sample(1234) == first
    chat = [
        sdk.chat.completions.create(
            messages=STORY,  # type: ignore[arg-type]
            model=model, max_tokens=16, temperature=1.0, seed=99,
        ).choices[0].message.content
        for _ in range(2)
    ]  # fmt: skip
    assert chat[0] == chat[1]


@pytest.mark.engine
def test_greedy_n_gives_the_greedy_answer_n_times(real: tuple[openai.OpenAI, str]) -> None:
    """temperature 0 (the default): vLLM refuses n > 1 there, so its one greedy answer stands
    for the n choices; llama.cpp decodes it n times. Both: n equal answers, streamed too."""
    sdk, model = real
    prompt = "The capital of France is"
    one = sdk.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0)
    reply = sdk.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0, n=2)
    assert [c.text for c in reply.choices] == [one.choices[0].text] * 2
    assert reply.usage is not None and one.usage is not None
    assert reply.usage.completion_tokens == 2 * one.usage.completion_tokens
    streamed = {0: "", 1: ""}
    for piece in sdk.completions.create(model=model, prompt=prompt, max_tokens=6, n=2,
                                        temperature=0, stream=True):  # fmt: skip
        for part in piece.choices:
            streamed[part.index] += part.text
    assert streamed == {0: one.choices[0].text, 1: one.choices[0].text}
