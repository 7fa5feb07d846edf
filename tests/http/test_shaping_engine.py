"""Answer shaping on the real engine over real HTTP: a server started with LENGTH_ROUTER (a
router that routes every prompt to 8 tokens), MAX_SENTENCES=1 and TRIM_UNFINISHED."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llmserve.shaping.postprocess import split_sentences
from llmserve.shaping.router import LengthRouter, words
from tests.conftest import Server, start_server

pytestmark = pytest.mark.engine

ROUTED = 8  # every example's reference length: the router sends every prompt here
PROMPTS = ["What is a GPU? Explain in detail.", "什么是 CUDA？请详细解释。"]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("shaped")
    examples = [(words("What is a GPU?"), ROUTED), (words("什么是 CUDA？"), ROUTED)]
    router = tmp / "router.json"
    router.write_text(json.dumps(LengthRouter.build(examples, 1, 1.0, 1).to_json()))
    srv = start_server(
        tmp, "shaped", LENGTH_ROUTER=str(router), MAX_SENTENCES="1", TRIM_UNFINISHED="1"
    )
    try:
        yield srv
    finally:
        srv.process.stop()


def test_predict_is_routed_and_post_processed(shaped: Server) -> None:
    with shaped.client() as client:
        reply = client.post("/predict", json={"prompt": PROMPTS})
    assert reply.status_code == 200
    answers = reply.json()["response"]
    assert len(answers) == len(PROMPTS)
    # routed: 8 tokens per prompt at most (MAX_NEW_TOKENS is 32 in the test settings)
    assert 0 < int(reply.headers["X-Output-Tokens"]) <= ROUTED * len(PROMPTS)
    for answer in answers:
        assert len([p for p in split_sentences(answer) if p.strip()]) <= 1


def test_openai_is_post_processed_but_not_routed(shaped: Server) -> None:
    body = {
        "model": "x",
        "messages": [{"role": "user", "content": PROMPTS[0]}],
        "max_tokens": 32,
        "ignore_eos": True,
    }
    with shaped.client() as client:
        models = client.get("/v1/models").json()
        body["model"] = models["data"][0]["id"]
        reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["usage"]["completion_tokens"] > ROUTED  # the client's max_tokens, not routed
    text = data["choices"][0]["message"]["content"]
    assert len([p for p in split_sentences(text) if p.strip()]) <= 1
