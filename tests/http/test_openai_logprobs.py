"""Completions echo + logprobs, token-id prompts and the tokenizer endpoints against the real
engines (the session servers of tests/conftest.py, real HTTP, the openai SDK): what lm-eval's
local-completions sends for multiple-choice and perplexity tasks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.engine

TEXT = "The capital of France is Paris"


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="EMPTY", max_retries=0,
                       timeout=300) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module")
def model(server: Server) -> str:
    with server.client() as http:
        return str(http.get("/info").json()["model"])


@pytest.fixture(scope="module")
def reference(server: Server) -> tuple[list[int], list[float]]:
    """TEXT's token ids and each token's logprob given the ones before, computed here by
    transformers in float32 on the served checkpoint (independent of vLLM)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with server.client() as http:
        model_dir = Path(http.get("/info").json()["engine"]["model_dir"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        logits = lm(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return ids, [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]


def test_echo_logprobs_equal_transformers(
    sdk: openai.OpenAI, model: str, reference: tuple[list[int], list[float]]
) -> None:
    """lm-eval's request: echo, logprobs 1, max_tokens 1, token ids. The prompt's own logprobs
    come back first (the first null), then the generated token's."""
    ids, expected = reference
    reply = sdk.completions.create(model=model, prompt=[ids], echo=True, logprobs=1,
                                   max_tokens=1, temperature=0)  # fmt: skip
    (choice,) = reply.choices
    assert choice.logprobs is not None
    got = choice.logprobs.token_logprobs
    assert got is not None and len(got) == len(ids) + 1
    assert got[0] is None and choice.logprobs.top_logprobs[0] is None  # type: ignore[index]
    for position, (ours, theirs) in enumerate(zip(got[1 : len(ids)], expected, strict=True)):
        assert ours == pytest.approx(theirs, abs=2e-3), f"token {position + 1}"
    assert "".join(choice.logprobs.tokens or []) == choice.text
    assert choice.text.startswith(TEXT)
    offsets = choice.logprobs.text_offset or []
    assert offsets[0] == 0 and offsets[len(ids)] == len(TEXT)
    # Greedy: the generated token is the most likely one at its position.
    last = choice.logprobs.top_logprobs[-1]  # type: ignore[index]
    assert got[-1] == pytest.approx(max(last.values()))


def test_text_and_token_id_prompts_score_the_same(
    server: Server, reference: tuple[list[int], list[float]]
) -> None:
    """A batch of token-id lists and the same texts: the same tokens and logprobs, choices
    indexed in prompt order; max_tokens 0 scores the prompt only."""
    ids, _ = reference
    short = ids[:3]
    with server.client() as http:
        by_ids = http.post("/v1/completions", json={
            "prompt": [ids, short], "echo": True, "logprobs": 2, "max_tokens": 0}).json()
        by_text = http.post("/v1/completions", json={
            "prompt": TEXT, "echo": True, "logprobs": 2, "max_tokens": 0}).json()
    assert [c["index"] for c in by_ids["choices"]] == [0, 1]
    first, second = by_ids["choices"]
    assert first["text"] == by_text["choices"][0]["text"] == TEXT
    assert len(first["logprobs"]["tokens"]) == len(ids)
    assert len(second["logprobs"]["tokens"]) == 3
    assert by_ids["usage"]["completion_tokens"] == 0
    ours = first["logprobs"]["token_logprobs"]
    theirs = by_text["choices"][0]["logprobs"]["token_logprobs"]
    assert ours[0] is None and theirs[0] is None
    assert ours[1:] == pytest.approx(theirs[1:], abs=1e-4)
    assert second["logprobs"]["token_logprobs"][1:] == pytest.approx(ours[1:3], abs=1e-4)
    # logprobs=2: each scored position lists at least the 2 most likely tokens
    assert all(len(top) >= 2 for top in first["logprobs"]["top_logprobs"][1:])


def test_generated_logprobs_without_echo(sdk: openai.OpenAI, model: str) -> None:
    reply = sdk.completions.create(model=model, prompt=TEXT, logprobs=3, max_tokens=4,
                                   temperature=0)  # fmt: skip
    (choice,) = reply.choices
    assert choice.logprobs is not None and reply.usage is not None
    tokens = choice.logprobs.tokens or []
    assert len(tokens) == reply.usage.completion_tokens and "".join(tokens) == choice.text
    for logprob, top in zip(choice.logprobs.token_logprobs or [], choice.logprobs.top_logprobs
                            or [], strict=True):  # fmt: skip
        assert logprob is not None and logprob <= 0 and math.isfinite(logprob)
        assert logprob == pytest.approx(max(top.values()))  # greedy


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"prompt": [[1, 49152]], "echo": True, "logprobs": 1, "max_tokens": 1}, "prompt",
     "token id 49152, outside the vocabulary"),
    ({"prompt": "x", "logprobs": 21}, "logprobs", "less than or equal to 20"),
])  # fmt: skip
def test_bad_logprob_requests_are_400s(
    server: Server, body: dict[str, object], param: str, words: str
) -> None:
    with server.client() as http:
        response = http.post("/v1/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_tokenizer_endpoints_match_generation(server: Server) -> None:
    """/tokenize gives the ids echo scores; /detokenize inverts it; /tokenizer_info has what
    lm-eval's remote tokenizer reads (eos_token)."""
    with server.client() as http:
        tokens = http.post("/tokenize", json={"prompt": TEXT, "add_special_tokens": False,
                                              "return_token_strs": True}).json()  # fmt: skip
        echoed = http.post("/v1/completions", json={"prompt": TEXT, "echo": True,
                                                    "max_tokens": 0, "logprobs": 0}).json()
        back = http.post("/detokenize", json={"tokens": tokens["tokens"]}).json()
        info = http.get("/tokenizer_info").json()
        chat = http.post("/tokenize", json={"messages": [{"role": "user", "content": "hi"}]})
    assert tokens["count"] == len(tokens["tokens"]) == len(echoed["choices"][0]["logprobs"]
                                                           ["tokens"])  # fmt: skip
    assert back == {"prompt": TEXT}
    assert info["eos_token"] and info["chat_template"]
    assert chat.status_code == 200 and chat.json()["count"] > 3  # the template's tokens


def test_llamacpp_echo_logprobs(
    llamacpp_server: Server, reference: tuple[list[int], list[float]]
) -> None:
    """The llama.cpp engine scores the prompt from llama.cpp's own logits: close to the
    float32 reference (the bundled GGUF is 4-bit: up to 0.11 apart here), first one null."""
    ids, expected = reference
    with llamacpp_server.client() as http:
        reply = http.post("/v1/completions", json={"prompt": [ids], "echo": True,
                                                   "logprobs": 1, "max_tokens": 1}).json()
        tokens = http.post("/tokenize", json={"prompt": TEXT, "add_special_tokens": False})
    logprobs = reply["choices"][0]["logprobs"]
    got = logprobs["token_logprobs"]
    assert got[0] is None and len(got) == len(ids) + 1
    assert got[1 : len(ids)] == pytest.approx(expected, abs=0.25)
    assert reply["choices"][0]["text"].startswith(TEXT)
    assert tokens.json()["tokens"] == ids


def test_chat_logprobs_and_top_logprobs(sdk: openai.OpenAI, model: str) -> None:
    """Chat's shape: one entry per answer token, its text joining to the answer, greedy (the
    token is the most likely), `top_logprobs` alternatives best first."""
    reply = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name a color."}], max_tokens=6,
        temperature=0, logprobs=True, top_logprobs=3,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    for token in content:
        assert len(token.top_logprobs) == 3
        values = [t.logprob for t in token.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert token.logprob == pytest.approx(values[0])  # greedy: the most likely token
