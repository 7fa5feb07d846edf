"""Load limits of /predict against the fake engine (tests/fake_engine.py): admission control
(MAX_WAITING_PROMPTS: a fast 503 with Retry-After), the per-request timeout (REQUEST_TIMEOUT:
504, the engine call cancelled), a client that disconnects (its engine call cancelled), and
the engine watcher that ends `llmserve serve` after an engine death. The real-engine proof is
tests/http/test_load_faults.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from llmserve.server import state as server_state
from llmserve.server.state import Service
from tests.fake_engine import FakeEngine, FakeEngineFactory
from tests.http.test_http import make_settings, serving
from tests.waiting import wait_for


def release(client: TestClient, engine: FakeEngine) -> None:
    """Let the held generate calls finish (the event is set on the app's loop)."""
    assert engine.hold is not None and client.portal is not None
    client.portal.call(engine.hold.set)


def held_factory() -> FakeEngineFactory:
    """Engines whose generate calls wait until `release` (each gets its own event)."""

    class Held(FakeEngineFactory):
        def __call__(self, settings, model_dir):  # type: ignore[no-untyped-def]
            self.options = {"hold": asyncio.Event()}
            return super().__call__(settings, model_dir)

    return Held()


def test_admission_refuses_over_max_waiting_prompts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_batch_prompts=4, max_waiting_prompts=4)
    pool = concurrent.futures.ThreadPoolExecutor(2)
    with serving(settings, held_factory()) as (client, factory), pool:
        first = pool.submit(client.post, "/predict", json={"prompt": ["a", "b", "c"]})
        wait_for(lambda: factory.engine.unfinished == 3, "the first request to reach the engine")
        assert client.get("/info").json()["load"] == {
            "waiting_prompts": 3,
            "max_waiting_prompts": 4,
            "engine_unfinished": 3,
        }
        refused = client.post("/predict", json={"prompt": ["d", "e"]})  # 3 + 2 > 4
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {
            "error": "server is at capacity: 3 prompts waiting, 2 more would exceed "
            "MAX_WAITING_PROMPTS=4; retry later"
        }
        assert len(factory.engine.calls) == 1  # the refused request never reached the engine
        second = pool.submit(client.post, "/predict", json={"prompt": "d"})  # 3 + 1 fits
        wait_for(lambda: factory.engine.unfinished == 4, "the second request to reach the engine")
        release(client, factory.engine)
        assert first.result(timeout=10).json() == {"response": ["echo: a", "echo: b", "echo: c"]}
        assert second.result(timeout=10).json() == {"response": "echo: d"}
        assert client.get("/info").json()["load"]["waiting_prompts"] == 0
        full = client.post("/predict", json={"prompt": ["a", "b", "c", "d"]})  # room again
        assert full.status_code == 200


def test_a_full_list_must_fit_the_waiting_limit(tmp_path: Path) -> None:
    message = "MAX_WAITING_PROMPTS=8 is below MAX_BATCH_PROMPTS=64"
    with pytest.raises(ValidationError, match=message):
        make_settings(tmp_path, max_waiting_prompts=8)


def test_timeout_gives_504_and_cancels_the_engine_call(tmp_path: Path) -> None:
    with serving(make_settings(tmp_path, request_timeout=0.2), held_factory()) as (
        client,
        factory,
    ):
        response = client.post("/predict", json={"prompt": ["a", "b"]})
        assert response.status_code == 504
        assert response.json() == {
            "error": "request took longer than REQUEST_TIMEOUT=0.2 s; its generation was aborted"
        }
        engine = factory.engine
        assert engine.cancelled == 1 and engine.unfinished == 0
        assert client.get("/info").json()["load"]["waiting_prompts"] == 0
        release(client, engine)
        assert client.post("/predict", json={"prompt": "hi"}).status_code == 200


async def post_then_disconnect(app: FastAPI, engine: FakeEngine, body: bytes) -> list[Any]:
    """POST /predict as raw ASGI; once the engine holds the prompts, the client disconnects.
    Returns what the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("test", 1),
        "server": ("test", 80),
    }
    gone = asyncio.Event()
    body_sent = False
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    call = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(engine.started.wait(), 10)
    gone.set()
    await asyncio.wait_for(call, 10)
    return sent


@pytest.mark.parametrize("prompt", ["one prompt", [f"prompt {n}" for n in range(256)]])
def test_disconnect_cancels_the_engine_call(tmp_path: Path, prompt: Any) -> None:
    settings = make_settings(tmp_path, max_batch_prompts=256)
    with serving(settings, held_factory()) as (client, factory):
        engine = factory.engine
        assert client.portal is not None
        sent = client.portal.call(
            post_then_disconnect, client.app, engine, json.dumps({"prompt": prompt}).encode()
        )
        assert sent[0]["status"] == 499  # nobody reads it; the access log shows it
        assert engine.cancelled == 1 and engine.unfinished == 0
        assert client.get("/info").json()["load"]["waiting_prompts"] == 0


def test_watcher_reports_the_death_once_after_the_linger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`llmserve serve` hooks on_engine_death to stop uvicorn and exit 1 (tests/http/test_faults.py
    proves the exit with a real engine); here the hook is called once the engine dies."""
    monkeypatch.setattr(server_state, "DEATH_LINGER_S", 0.0)
    monkeypatch.setattr(server_state, "WATCH_PERIOD_S", 0.01)
    with serving(make_settings(tmp_path)) as (client, factory):
        service: Service = client.app.state.service  # type: ignore[attr-defined]
        deaths: list[str] = []
        service.on_engine_death = lambda: deaths.append(service.state.value)
        factory.engine.die()  # no request reveals it: the watcher must
        wait_for(lambda: deaths, "the watcher to call on_engine_death")
        assert deaths == ["dead"]
