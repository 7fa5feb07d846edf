"""/predict, / and /info against the real server: real engine, real model, real HTTP."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.engine

PROMPTS = [f"In one sentence, what is {i} plus {i + 1}?" for i in range(64)]


def predict(client: httpx.Client, prompt: object) -> httpx.Response:
    return client.post("/predict", json={"prompt": prompt})


def test_health_and_info(server: Server) -> None:
    with server.client() as client:
        health = client.get("/")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        info = client.get("/info").json()
    engine = info["engine"]
    assert engine["device"] in {"cpu", "cuda"}
    assert engine["max_model_len"] == 1024
    assert engine["model_dir"].endswith("SmolLM2-135M-Instruct")
    assert engine["vllm_version"] and engine["dtype"] and engine["chat_template"] is True
    assert info["settings"]["max_new_tokens"] == 32
    # Sanity of the start-up: / answered 503 while the engine loaded, then 200.
    assert 503 in server.process.health_codes and server.process.health_codes[-1] == 200


def test_single_prompt(any_server: Server) -> None:
    with any_server.client() as client:
        response = predict(client, "What is CUDA?")
    assert response.status_code == 200
    assert isinstance(response.json()["response"], str) and response.json()["response"].strip()
    assert float(response.headers["X-Engine-Seconds"]) > 0
    assert 0 < int(response.headers["X-Output-Tokens"]) <= 32


def test_list_of_64_in_order(any_server: Server) -> None:
    with any_server.client() as client:
        listed = predict(client, PROMPTS)
        assert listed.status_code == 200
        answers = listed.json()["response"]
        assert isinstance(answers, list) and len(answers) == 64
        assert all(a.strip() for a in answers)
        # Order: answers at a few positions are the ones those prompts get alone.
        for index in (0, 17, 42, 63):
            assert predict(client, PROMPTS[index]).json()["response"] == answers[index]


def test_32_concurrent_singles_match_alone(any_server: Server) -> None:
    prompts = PROMPTS[:32]
    with any_server.client() as client:
        alone = [predict(client, p).json()["response"] for p in prompts]

        def one(prompt: str) -> str:
            with any_server.client() as own:
                response = predict(own, prompt)
                assert response.status_code == 200
                return str(response.json()["response"])

        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            together = list(pool.map(one, prompts))
    assert together == alone


BAD_BODIES = [
    (b"not json", 400),
    (b'["a list"]', 400),
    (b"{}", 422),
    (b'{"prompt": 5}', 422),
    (b'{"prompt": null}', 422),
    (b'{"prompt": [["nested"]]}', 422),
    (b'{"prompt": ["ok", 3]}', 422),
    (b'{"prompt": ""}', 422),
    (b'{"prompt": []}', 422),
    (('{"prompt": [' + ",".join(['"x"'] * 65) + "]}").encode(), 413),  # MAX_BATCH_PROMPTS=64
    (('{"prompt": "' + "word " * 1500 + '"}').encode(), 413),  # over MAX_MODEL_LEN=1024
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_bad_input_then_good(any_server: Server, body: bytes, status: int) -> None:
    with any_server.client(timeout=60) as client:
        bad = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert bad.status_code == status
        assert bad.json()["error"]
        good = predict(client, "Name one GPU vendor.")
        assert good.status_code == 200 and good.json()["response"]


def test_warm_up_runs_before_ready(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A server with WARMUP_DATA is healthy only after the warm-up prompts ran."""
    from tests.conftest import start_server

    data = tmp_path / "warm.jsonl"
    data.write_text('{"question": "Say hi.", "answer": "hi"}\n' * 3)
    warm = start_server(tmp_path, "warm", WARMUP_DATA=str(data), WARMUP_SAMPLES="2")
    try:
        with warm.client() as client:
            assert client.get("/").status_code == 200
    finally:
        warm.process.stop()
    assert "warming up with 2 prompts" in warm.log.read_text()
