"""ENGINE_REPLICAS: dispatch over several engines (llmserve/engines/replicas.py).

Fast part: fake engines, the dispatcher alone and behind the app over real HTTP.
Real part (`engine`): `llmserve serve` with ENGINE_REPLICAS=2 of the bundled model: answers
in order and equal to one engine's, requests spread over both, and one engine-core process
killed turns only its requests into fast 503s while the other replica keeps answering.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from llmserve.engines.base import EngineDead, Generation, PromptTooLong
from llmserve.engines.replicas import ReplicatedEngine, merge, replicated, split
from llmserve.server.app import create_app
from llmserve.settings import Settings
from tests.asgi import serve_in_thread
from tests.conftest import LONG_ENV, engine_cores, start_server
from tests.fake_engine import FakeEngine, FakeEngineFactory


def fakes(tmp_path: Path, count: int = 2, **options: Any) -> list[FakeEngine]:
    settings = Settings(model_dir=tmp_path, max_model_len=1024, max_new_tokens=8)
    return [FakeEngine(settings, tmp_path, **options) for _ in range(count)]


def test_split_is_contiguous_and_even() -> None:
    assert split(list("abcdefg"), 3) == [list("abc"), list("de"), list("fg")]
    assert split(["a"], 2) == [["a"], []]
    assert [x for part in split(list(range(10)), 4) for x in part] == list(range(10))


def test_merge_keeps_order_and_takes_the_longest_time() -> None:
    one = Generation(["a"], [1], [2], ["stop"], engine_seconds=1.0, ttft_seconds=0.5)
    two = Generation(["b", "c"], [3, 4], [5, 6], ["length", "stop"], 3.0, 0.2)
    merged = merge([one, two])
    assert merged.texts == ["a", "b", "c"] and merged.completion_tokens == [2, 5, 6]
    assert merged.finish_reasons == ["stop", "length", "stop"]
    assert merged.engine_seconds == 3.0 and merged.ttft_seconds == 0.2


def test_a_list_is_split_across_replicas_and_put_back_in_order(tmp_path: Path) -> None:
    engines = fakes(tmp_path)
    replicated_engine = ReplicatedEngine(engines)
    prompts = [f"q{n}" for n in range(7)]
    result = asyncio.run(replicated_engine.generate(prompts))
    assert result.texts == [f"echo: q{n}" for n in range(7)]
    assert [call.prompts for call in engines[0].calls] == [prompts[:4]]
    assert [call.prompts for call in engines[1].calls] == [prompts[4:]]


def test_a_too_long_prompt_is_named_by_its_place_in_the_whole_list(tmp_path: Path) -> None:
    engine = ReplicatedEngine(fakes(tmp_path))
    long = " ".join(["word"] * 2000)  # over the fakes' MAX_MODEL_LEN, in words
    with pytest.raises(PromptTooLong) as caught:
        asyncio.run(engine.generate(["a", "b", "c", "d", long, "f"]))  # slice 2 is 3 items in
    assert caught.value.index == 4 and str(caught.value).startswith("prompt[4] ")


def test_a_request_goes_to_the_less_loaded_replica(tmp_path: Path) -> None:
    hold = asyncio.Event()
    busy, free = fakes(tmp_path, 1, hold=hold)[0], fakes(tmp_path, 1)[0]
    engine = ReplicatedEngine([busy, free])

    async def scenario() -> None:
        first = asyncio.create_task(engine.generate(["long one"]))
        await busy.started.wait()  # the first request holds replica 0
        assert engine.facts()["replicas"][0]["load"] == 1
        second = await engine.generate(["short one"])  # replica 1 answers while 0 is busy
        assert second.texts == ["echo: short one"]
        deltas = [d async for d in engine.stream("streamed")]  # also to the free one
        assert "".join(d.text for d in deltas) == "echo: streamed"
        hold.set()
        assert (await first).texts == ["echo: long one"]

    asyncio.run(scenario())
    assert [c.prompts for c in busy.calls] == [["long one"]]
    assert [c.prompts for c in free.calls] == [["short one"], ["streamed"]]
    assert [r["served"] for r in engine.facts()["replicas"]] == [1, 2]


def test_a_dead_replica_fails_only_its_requests(tmp_path: Path) -> None:
    dying = fakes(tmp_path, 1, die_during_generate=True)[0]
    healthy = fakes(tmp_path, 1)[0]
    engine = ReplicatedEngine([dying, healthy])
    with pytest.raises(EngineDead, match="engine replica 0 died: engine core crashed"):
        asyncio.run(engine.generate(["to replica 0"]))
    assert not engine.dead
    result = asyncio.run(engine.generate(["a", "b", "c"]))  # all to the live one now
    assert result.texts == ["echo: a", "echo: b", "echo: c"]
    assert [c.prompts for c in healthy.calls] == [["a", "b", "c"]]
    healthy.die()
    assert engine.dead
    with pytest.raises(EngineDead, match="all 2 engine replicas died"):
        asyncio.run(engine.generate(["x"]))


def test_a_failing_slice_cancels_the_others(tmp_path: Path) -> None:
    hold = asyncio.Event()  # never set: the healthy slice would wait forever
    waiting = fakes(tmp_path, 1, hold=hold)[0]
    dying = fakes(tmp_path, 1, die_during_generate=True)[0]
    engine = ReplicatedEngine([waiting, dying])
    with pytest.raises(EngineDead, match="replica 1 died"):
        asyncio.run(engine.generate(["a", "b"]))
    assert waiting.cancelled == 1 and waiting.unfinished == 0


def test_replicated_factory_builds_n_and_cleans_up_a_failed_start(tmp_path: Path) -> None:
    single = FakeEngineFactory()
    assert replicated(single, 1) is single
    settings = Settings(model_dir=tmp_path)
    two = FakeEngineFactory()
    engine = replicated(two, 2)(settings, tmp_path)
    assert isinstance(engine, ReplicatedEngine) and len(two.engines) == 2

    class OneFails(FakeEngineFactory):
        def __call__(self, settings_: Settings, model_dir: Path) -> FakeEngine:
            if len(self.engines) == 1:  # the second start fails
                self.engines.append(None)  # type: ignore[arg-type]
                raise RuntimeError("no memory for replica 1")
            return super().__call__(settings_, model_dir)

    failing = OneFails()
    with pytest.raises(RuntimeError, match="no memory for replica 1"):
        replicated(failing, 2)(settings, tmp_path)
    started = [e for e in failing.engines if e is not None]
    assert len(started) == 1 and started[0].shut  # the replica that did start is released


def test_the_app_serves_replicas_and_info_shows_them(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path, max_model_len=1024, engine_replicas=2)
    factory = FakeEngineFactory()
    app = create_app(settings, factory)
    with serve_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url) as http:
        deadline = time.monotonic() + 10
        while http.get("/").status_code != 200:
            assert time.monotonic() < deadline, "never ready"
        answer = http.post("/predict", json={"prompt": ["a", "b", "c"]}).json()
        assert answer == {"response": ["echo: a", "echo: b", "echo: c"]}
        rows = http.get("/info").json()["engine"]["replicas"]
    assert [r["served"] for r in rows] == [2, 1] and len(factory.engines) == 2


# --- real engines ----------------------------------------------------------------------------


@pytest.mark.engine
@pytest.mark.parametrize("layout", ["process", "shared"])
def test_two_real_replicas(tmp_path: Path, layout: str) -> None:
    # LONG_ENV, with 128 tokens an answer: several seconds a request here, so the kill below
    # still lands mid-answer, and the survivors finish well within their 120 s (with 512, one
    # did not, in a whole-suite run on the 2-core Xeon).
    server = start_server(
        tmp_path, "replicas", ENGINE_REPLICAS="2", REPLICA_LAYOUT=layout,
        **{**LONG_ENV, "MAX_NEW_TOKENS": "128"},
    )
    try:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            info = http.get("/info").json()
            assert len(info["engine"]["replicas"]) == 2
            assert len(engine_cores(server.process.pid)) == 2
            workers = [
                p for p in psutil.Process(server.process.pid).children()
                if "llmserve.engines.process.worker" in " ".join(p.cmdline())
            ]  # fmt: skip
            assert len(workers) == (2 if layout == "process" else 0)
            # Order and content: a list split over both equals each prompt asked alone
            # (greedy, float32). Short answers through /v1/completions' per-request max_tokens;
            # the long answers are for the requests in flight when a replica is killed.
            prompts = [f"Count from {n} to {n + 3}." for n in range(6)]
            model = http.get("/v1/models").json()["data"][0]["id"]

            def complete(prompt: str | list[str]) -> list[str]:
                body = {"model": model, "prompt": prompt,
                        "max_tokens": 8, "temperature": 0}
                reply = http.post("/v1/completions", json=body)
                assert reply.status_code == 200, reply.text
                return [choice["text"] for choice in reply.json()["choices"]]

            together = complete(prompts)
            alone = [complete(p)[0] for p in prompts]
            assert together == alone
            served = [r["served"] for r in http.get("/info").json()["engine"]["replicas"]]
            assert all(n >= 3 for n in served), served  # both took part of the list

            # One replica's engine core killed under load: its requests fail fast with 503,
            # the other replica's finish, and the service keeps answering.
            with concurrent.futures.ThreadPoolExecutor(4) as pool:

                def predict(prompt: str) -> tuple[int, str]:
                    with httpx.Client(base_url=server.url, timeout=300) as own:
                        response = own.post("/predict", json={"prompt": prompt})
                    return response.status_code, response.text

                futures = [pool.submit(predict, f"Story {n}:") for n in range(4)]
                deadline = time.monotonic() + 120
                while True:
                    rows = http.get("/info").json()["engine"]["replicas"]
                    if all(r["load"] >= 1 for r in rows):
                        break
                    assert time.monotonic() < deadline, rows
                engine_cores(server.process.pid)[0].kill()
                results = [f.result(timeout=120) for f in futures]
            statuses = sorted(status for status, _ in results)
            assert 503 in statuses, results
            assert all(s in (200, 503) for s in statuses), results
            assert all("replica" in text for status, text in results if status == 503)
            assert http.get("/").status_code == 200  # one replica still serves
            after = http.post("/predict", json={"prompt": ["Hi", "Bye"]})
            assert after.status_code == 200 and len(after.json()["response"]) == 2
            rows = http.get("/info").json()["engine"]["replicas"]
            assert sorted(r["dead"] for r in rows) == [False, True]
        if layout == "process":  # a server killed outright leaves no worker behind
            survivors = [*workers, *engine_cores(server.process.pid)]
            server.process.process.kill()  # the API process alone (SIGKILL), not its group
            _, alive = psutil.wait_procs(survivors, timeout=120)
            assert not alive, alive
    finally:
        server.process.stop()
