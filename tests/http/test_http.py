"""The HTTP layer against a fake engine (tests/fake_engine.py): health while loading, /predict,
every 4xx and 503, /info, the timing headers. Runs in seconds, without vLLM; the real-engine
proof of the same endpoints is tests/http/test_api.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserve.engines.base import Engine, Sampling
from llmserve.errors import ModelNotFound
from llmserve.server import app as server_app
from llmserve.server.app import create_app
from llmserve.server.schema import BadRequest, parse_predict
from llmserve.settings import Settings
from tests.fake_engine import FakeEngine, FakeEngineFactory
from tests.http.test_api import BAD_BODIES
from tests.waiting import wait_for


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    # The same limits as the real-engine tests (tests/conftest.py), so BAD_BODIES applies.
    base: dict[str, Any] = {
        "model_dir": tmp_path,
        "max_model_len": 1024,
        "max_new_tokens": 32,
        "max_batch_prompts": 64,
    }
    return Settings(**{**base, **values})


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    wait_for(lambda: client.get("/").status_code == 200, "ready fake engine", timeout)


@contextmanager
def serving(
    settings: Settings, factory: FakeEngineFactory | None = None, ready: bool = True
) -> Iterator[tuple[TestClient, FakeEngineFactory]]:
    factory = factory or FakeEngineFactory()
    with TestClient(create_app(settings, engine_factory=factory)) as client:
        if ready:
            wait_ready(client)
        yield client, factory


def test_fake_engine_is_an_engine(tmp_path: Path) -> None:
    assert isinstance(FakeEngine(make_settings(tmp_path), tmp_path), Engine)


def test_health_503_while_loading_then_200(tmp_path: Path) -> None:
    gate = threading.Event()
    with serving(make_settings(tmp_path), FakeEngineFactory(gate=gate), ready=False) as (
        client,
        factory,
    ):
        loading = client.get("/")
        assert loading.status_code == 503
        assert loading.json() == {"status": "loading", "model": tmp_path.name}
        refused = client.post("/predict", json={"prompt": "hi"})
        assert refused.status_code == 503 and refused.json() == {"error": "engine is loading"}
        assert client.get("/info").json()["engine"] is None
        gate.set()
        wait_ready(client)
        assert client.get("/").json() == {"status": "ok", "model": tmp_path.name}
    assert factory.engine.shut  # the lifespan shut the engine down


def test_single_and_list_in_order_with_headers(tmp_path: Path) -> None:
    with serving(make_settings(tmp_path)) as (client, _):
        single = client.post("/predict", json={"prompt": "What is CUDA?"})
        assert single.status_code == 200
        assert single.json() == {"response": "echo: What is CUDA?"}
        assert single.headers["X-Output-Tokens"] == "4"
        assert float(single.headers["X-Engine-Seconds"]) >= 0
        assert single.headers["X-Engine-TTFT"] == "0.001000"
        prompts = [f"question {i}" for i in range(64)]
        listed = client.post("/predict", json={"prompt": prompts})
        assert listed.json()["response"] == [f"echo: {p}" for p in prompts]
        assert listed.headers["X-Output-Tokens"] == str(64 * 3)


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_bad_input_then_good(tmp_path: Path, body: bytes, status: int) -> None:
    """The real-engine test's bodies (tests/http/test_api.py), with the messages the schema
    gives."""
    with serving(make_settings(tmp_path)) as (client, _):
        bad = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert bad.status_code == status
        message = bad.json()["error"]
        try:
            parse_predict(body, 64)
        except BadRequest as expected:
            assert message == str(expected)
        else:  # a well-formed prompt over MAX_MODEL_LEN: the engine's PromptTooLong
            assert message.startswith("prompt[0] has ") and "(MAX_MODEL_LEN=1024)" in message
        good = client.post("/predict", json={"prompt": "Name one GPU vendor."})
        assert good.status_code == 200 and good.json()["response"]


def test_too_long_prompt_in_a_list_names_it(tmp_path: Path) -> None:
    with serving(make_settings(tmp_path)) as (client, _):
        response = client.post("/predict", json={"prompt": ["fine", "word " * 1500]})
    assert response.status_code == 413
    assert response.json()["error"] == (
        "prompt[1] has 1500 tokens after templating; the limit is 1023 (MAX_MODEL_LEN=1024)"
    )


def test_dead_engine_gives_503_on_health_and_predict(tmp_path: Path) -> None:
    with serving(make_settings(tmp_path)) as (client, factory):
        assert client.post("/predict", json={"prompt": "Hi"}).status_code == 200
        factory.engine.die()
        health = client.get("/")
        assert health.status_code == 503
        assert health.json() == {
            "status": "dead",
            "model": tmp_path.name,
            "error": "the engine process died",
        }
        response = client.post("/predict", json={"prompt": "Hi"})
        assert response.status_code == 503
        assert response.json() == {"error": "engine is dead: the engine process died"}
        assert client.get("/info").json()["status"] == "dead"


def test_engine_dying_during_a_request(tmp_path: Path) -> None:
    factory = FakeEngineFactory(options={"die_during_generate": True})
    with serving(make_settings(tmp_path), factory) as (client, _):
        response = client.post("/predict", json={"prompt": "Hi"})
        assert response.status_code == 503
        assert response.json() == {"error": "engine is dead: engine core crashed mid-request"}
        assert client.get("/").json()["status"] == "dead"


def test_other_engine_errors_are_500(tmp_path: Path) -> None:
    """An error of a live engine is a bug, not the client's fault nor a dead engine."""

    class Broken(FakeEngine):
        async def generate(self, prompts, sampling=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

    app = create_app(make_settings(tmp_path), engine_factory=Broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        assert client.post("/predict", json={"prompt": "Hi"}).status_code == 500
        assert client.get("/").status_code == 200


def test_info_reports_settings_and_engine_facts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with serving(settings) as (client, _):
        info = client.get("/info").json()
    assert info["status"] == "ok"
    assert info["settings"] == settings.public()
    assert info["settings"]["engine"] == "vllm" and info["settings"]["max_new_tokens"] == 32
    assert info["engine"] == {"engine": "fake", "model_dir": str(tmp_path), "max_model_len": 1024}


def test_sampling_defaults_come_from_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        max_new_tokens=2,
        temperature=0.5,
        top_k=5,
        stop_strings=["END"],
        seed=3,
        presence_penalty=0.25,
    )
    with serving(settings) as (client, factory):
        response = client.post("/predict", json={"prompt": "one two three"})
        assert response.json()["response"] == "echo: one"  # 2 tokens at most
    sampling = factory.engine.calls[-1].sampling
    assert sampling == Sampling.from_settings(settings)
    assert (
        sampling.max_tokens,
        sampling.temperature,
        sampling.top_k,
        sampling.stop,
        sampling.seed,
        sampling.presence_penalty,
    ) == (2, 0.5, 5, ("END",), 3, 0.25)


def test_concurrent_requests_are_not_serialized(tmp_path: Path) -> None:
    factory = FakeEngineFactory(options={"delay": 0.3})
    with serving(make_settings(tmp_path), factory) as (client, _):
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(
                    lambda i: client.post("/predict", json={"prompt": f"p{i}"}).json()["response"],
                    range(8),
                )
            )
        elapsed = time.perf_counter() - start
    assert answers == [f"echo: p{i}" for i in range(8)]
    assert elapsed < 8 * 0.3 / 2, elapsed


def test_warm_up_runs_before_ready(tmp_path: Path) -> None:
    data = tmp_path / "warm.jsonl"
    data.write_text('{"question": "Say hi.", "answer": "hi"}\n' * 3)
    settings = make_settings(tmp_path, warmup_data=data, warmup_samples=2)
    with serving(settings) as (_, factory):
        assert factory.engine.calls[0].prompts == ["Say hi.", "Say hi."]


def test_start_up_heap_is_left_out_of_garbage_collections(tmp_path: Path) -> None:
    gc.unfreeze()  # an earlier app of this test process froze its own start-up
    assert gc.get_freeze_count() == 0
    with serving(make_settings(tmp_path)):
        # Once ready, everything start-up allocated (vLLM, the tokenizer; here the fake
        # engine and the app) is frozen: no full collection walks it while serving.
        assert gc.get_freeze_count() > 0


def test_start_failure_ends_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    monkeypatch.setattr(server_app, "die", messages.append)  # instead of os._exit(1)
    factory = FakeEngineFactory(fail=RuntimeError("no weights here"))
    with serving(make_settings(tmp_path), factory, ready=False) as (client, _):
        deadline = time.monotonic() + 10
        while not messages:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client.get("/").status_code == 503
    assert messages == ["error: the engine failed to start: RuntimeError: no weights here"]


def test_missing_model_stops_before_serving(tmp_path: Path) -> None:
    settings = Settings(model_id="org/absent", models_root=tmp_path)
    with pytest.raises(ModelNotFound, match=r"run `python download_model.py`"):
        create_app(settings, engine_factory=FakeEngineFactory())


def test_fake_stream_ends_with_the_finish_reason(tmp_path: Path) -> None:
    engine = FakeEngine(make_settings(tmp_path), tmp_path)

    async def collect() -> list[Any]:
        return [d async for d in engine.stream("a b", Sampling(max_tokens=2))]

    deltas = asyncio.run(collect())
    assert "".join(d.text for d in deltas) == "echo: a"
    assert deltas[-1].finished and deltas[-1].finish_reason == "length"
    assert not any(d.finished for d in deltas[:-1])
