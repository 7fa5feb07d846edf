"""Long /predict lists, as the benchmark sends them: tokenized in chunks that enter the engine
one after another (llmserve.engines.vllm.engine.TOKENIZE_CHUNK), answers still in order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmserve.engines.vllm.engine import TOKENIZE_CHUNK
from tests.conftest import Server, start_server

pytestmark = pytest.mark.engine

COUNT = 2 * TOKENIZE_CHUNK + 22  # two full chunks and a partial one
PROMPTS = [f"In one word, what colour is thing number {i}?" for i in range(COUNT)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("chunks"), "chunks",
                       MAX_BATCH_PROMPTS=str(COUNT), MAX_NEW_TOKENS="8")
    try:
        yield srv
    finally:
        srv.process.stop()


def test_long_list_answers_in_order(server: Server) -> None:
    with server.client() as client:
        listed = client.post("/predict", json={"prompt": PROMPTS})
        assert listed.status_code == 200
        answers = listed.json()["response"]
        assert len(answers) == COUNT
        assert 0 < int(listed.headers["X-Output-Tokens"]) <= COUNT * 8
        for index in (0, TOKENIZE_CHUNK - 1, TOKENIZE_CHUNK, COUNT - 1):  # chunk edges
            alone = client.post("/predict", json={"prompt": PROMPTS[index]})
            assert alone.json()["response"] == answers[index], index


def test_too_long_prompt_in_a_later_chunk(server: Server) -> None:
    late = TOKENIZE_CHUNK + 5
    prompts = [*PROMPTS[:late], "word " * 1500, *PROMPTS[late:]]  # over MAX_MODEL_LEN=1024
    with server.client() as client:
        refused = client.post("/predict", json={"prompt": prompts[:COUNT]})
        assert refused.status_code == 413
        assert f"prompt[{late}]" in refused.json()["error"]
        # The chunk already in the engine was aborted; the engine serves the next request.
        good = client.post("/predict", json={"prompt": PROMPTS[:3]})
        assert good.status_code == 200 and len(good.json()["response"]) == 3
