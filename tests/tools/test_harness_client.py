"""The shared /predict, /info and OpenAI-API (/v1/chat/completions, /v1/models) client over
real HTTP, against a small scripted uvicorn app (no engine): retries, errors that name the
server's message, headers, answer checks, the bearer key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from llmserve.errors import ExitCode, ServerError
from llmserve.harness.client import (
    Info,
    Prediction,
    RetryableStatus,
    ServerDown,
    ServiceClient,
    get_info,
    list_models,
    post_chat,
    post_predict,
    predict_sync,
)
from llmserve.process import free_port
from tests.asgi import read_body, send_json, serve_in_thread

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
HEADERS = {"X-Engine-Seconds": "0.250000", "X-Output-Tokens": "7", "X-Engine-TTFT": "0.050000"}
INFO = {"status": "ready", "settings": {"max_batch_prompts": 16, "port": 1},
        "engine": {"model_dir": "/models/m", "dtype": "float32"}}


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedApp:
    """Answers each path from its script, in order (then the path's default); records the
    requests it got. /predict echoes upper-cased prompts by default."""

    def __init__(self) -> None:
        self.script: dict[str, list[Answer]] = {}
        self.requests: list[tuple[str, Any]] = []
        self.authorization: list[str | None] = []  # each request's Authorization header

    def then(self, path: str, *answers: Answer) -> None:
        self.script.setdefault(path, []).extend(answers)

    def default(self, path: str, payload: Any) -> Answer:
        if path == "/predict":
            prompt = payload["prompt"]
            upper = [p.upper() for p in prompt] if isinstance(prompt, list) else prompt.upper()
            return Answer(200, {"response": upper}, HEADERS)
        if path == "/info":
            return Answer(200, INFO)
        if path == "/v1/models":
            return Answer(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
        if path == "/v1/chat/completions":  # the last message upper-cased; a token per word
            text = payload["messages"][-1]["content"].upper()
            return Answer(200, {
                "object": "chat.completion", "model": payload.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split()),
                          "total_tokens": 3 + len(text.split())}})
        return Answer(200, {"status": "ok"})

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path = scope["path"]
        payload = json.loads(body) if body else None
        self.requests.append((path, payload))
        auth = dict(scope["headers"]).get(b"authorization")
        self.authorization.append(auth.decode() if auth else None)
        queued = self.script.get(path)
        answer = queued.pop(0) if queued else self.default(path, payload)
        headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
        await send_json(send, answer.status, answer.body, headers)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@pytest.fixture
def app() -> Iterator[tuple[ScriptedApp, str]]:
    """The app served by uvicorn in a thread (so blocking calls work too); yields its URL."""
    scripted = ScriptedApp()
    with serve_in_thread(scripted) as url:
        yield scripted, url


def client(url: str, retries: int = 3, **kwargs: Any) -> ServiceClient:
    return ServiceClient(url, timeout=10, retries=retries, backoff_max=0.01, **kwargs)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


def test_a_503_then_200_is_retried(app: tuple[ScriptedApp, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    scripted, url = app
    scripted.then("/predict", Answer(503, {"error": "engine is loading"}))

    async def scenario() -> Prediction:
        async with client(url, tool="judge") as service:
            return await service.predict("hi")

    prediction = run(scenario())
    assert prediction.responses == ["HI"]
    assert scripted.count("/predict") == 2
    assert "judge: POST /predict at" in capsys.readouterr().err  # the retry was said


def test_a_4xx_is_not_retried_and_names_the_message(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/predict", Answer(422, {"error": "prompt must not be empty"}))

    async def scenario() -> None:
        async with client(url) as service:
            await service.predict("")

    with pytest.raises(ServerError, match="is 422: prompt must not be empty") as caught:
        run(scenario())
    assert caught.value.exit_code is ExitCode.SERVER
    assert scripted.count("/predict") == 1


def test_status_hint_and_retries_running_out(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/predict", Answer(413, {"error": "too many prompts"}))
    scripted.then("/predict", *[Answer(503, {"error": "busy"})] * 3)

    async def scenario() -> None:
        async with client(url, retries=2, status_hints={413: "lower --batch-size"}) as service:
            with pytest.raises(ServerError, match=r"too many prompts \(lower --batch-size\)"):
                await service.predict(["a", "b"])
            with pytest.raises(ServerError, match=r"failed after 3 tries: .*503: busy"):
                await service.predict("a")

    run(scenario())
    assert scripted.count("/predict") == 1 + 3


def test_headers_are_parsed(app: tuple[ScriptedApp, str]) -> None:
    _, url = app

    async def scenario() -> Prediction:
        async with httpx.AsyncClient(base_url=url) as http:
            return await post_predict(http, ["a", "b"])

    prediction = run(scenario())
    assert prediction.responses == ["A", "B"]
    assert prediction.engine_seconds == 0.25
    assert prediction.engine_output_tokens == prediction.output_tokens == 7
    assert prediction.engine_ttft == 0.05
    assert prediction.latency_s > 0
    assert prediction.t_end == pytest.approx(prediction.t_start + prediction.latency_s)
    # TTFT seen by a client: the engine's plus all time outside the engine.
    assert prediction.ttft_s == pytest.approx(0.05 + max(prediction.latency_s - 0.25, 0.0))


def test_missing_headers(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/predict", Answer(200, {"response": "x"}))
    prediction = predict_sync(url, "x")
    assert prediction.engine_seconds is None and prediction.engine_output_tokens is None
    with pytest.raises(ServerError, match="no X-Output-Tokens"):
        _ = prediction.output_tokens
    with pytest.raises(ServerError, match="no X-Engine-TTFT"):
        _ = prediction.ttft_s


def test_a_list_answer_of_the_wrong_length_is_an_error(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/predict", Answer(200, {"response": ["only one"]}, HEADERS))
    scripted.then("/predict", Answer(200, {"answer": "?"}, HEADERS))
    with pytest.raises(ServerError, match="sent 2 prompts, got list"):
        predict_sync(url, ["a", "b"])
    with pytest.raises(ServerError, match="no 'response'"):
        predict_sync(url, "a")


def test_as_list_sends_a_list_for_one_prompt(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app

    async def scenario() -> Prediction:
        async with client(url) as service:
            return await service.predict(["q"], as_list=True)

    assert run(scenario()).responses == ["Q"]
    assert scripted.requests[-1] == ("/predict", {"prompt": ["q"]})


def test_post_predict_never_retries(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/predict", Answer(503, {"error": "engine is dead"}))

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=url) as http:
            await post_predict(http, "a")

    with pytest.raises(RetryableStatus, match="503: engine is dead"):
        run(scenario())
    assert scripted.count("/predict") == 1


def test_wait_healthy_waits_for_a_loading_server(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/", *[Answer(503, {"status": "loading"})] * 2)

    async def scenario() -> dict[str, Any]:
        async with client(url) as service:
            return await service.wait_healthy(wait_s=0.01, loading_s=30)

    assert run(scenario()) == {"status": "ok"}
    assert scripted.count("/") == 3


def test_no_server_is_server_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def scenario() -> None:
        async with client(url) as service:
            await service.wait_healthy(wait_s=0.5, loading_s=30)

    with pytest.raises(ServerDown, match="connection refused") as caught:
        run(scenario())
    assert url in str(caught.value) and caught.value.exit_code is ExitCode.SERVER
    with pytest.raises(ServerError, match="/info failed: connection refused"):
        get_info(url)


def test_info_typed_view(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    assert get_info(url) == INFO
    info = Info(get_info(url))
    assert (info.model_dir, info.dtype, info.max_batch_prompts) == ("/models/m", "float32", 16)
    assert info.status == "ready" and info.settings["port"] == 1
    assert Info({"engine": None}).engine == {} and Info({}).max_batch_prompts is None
    scripted.then("/info", Answer(404, {"error": "no such route"}))
    scripted.then("/info", Answer(500, {"error": "boom"}))

    async def scenario() -> Info | None:
        async with client(url) as service:
            return await service.info()

    assert run(scenario()) is None  # a server without /info: the tool runs with less detail
    with pytest.raises(ServerError, match="/info is 500: boom"):
        get_info(url)


# --- the OpenAI API ---------------------------------------------------------------------------


def test_chat_reads_content_and_completion_tokens(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app

    async def scenario() -> Prediction:
        async with client(url, api_key="k1") as service:
            return await service.chat([{"role": "user", "content": "two words"}], model="m",
                                      max_tokens=5)

    prediction = run(scenario())
    assert prediction.responses == ["TWO WORDS"]
    assert prediction.engine_output_tokens == 2 and prediction.output_tokens == 2
    assert prediction.engine_seconds is None  # no X-Engine-Seconds: tokens/s falls to wall
    path, body = scripted.requests[-1]
    assert path == "/v1/chat/completions"
    assert body == {"messages": [{"role": "user", "content": "two words"}], "model": "m",
                    "max_tokens": 5}
    assert scripted.authorization[-1] == "Bearer k1"


def test_chat_engine_headers_are_read_when_sent(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
            "usage": {"completion_tokens": 4}}
    scripted.then("/v1/chat/completions", Answer(200, body, HEADERS))

    async def scenario() -> Prediction:
        async with httpx.AsyncClient(base_url=url) as http:
            return await post_chat(http, [{"role": "user", "content": "q"}])

    prediction = run(scenario())
    assert (prediction.engine_seconds, prediction.engine_output_tokens) == (0.25, 4)
    assert scripted.requests[-1][1] == {"messages": [{"role": "user", "content": "q"}]}
    assert scripted.authorization[-1] is None  # no key, no header


def test_chat_openai_error_shape_names_the_message(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    error = {"error": {"message": "The model 'x' does not exist", "type": "invalid_request_error",
                       "param": "model", "code": "model_not_found"}}
    scripted.then("/v1/chat/completions", Answer(404, error))

    async def scenario() -> None:
        async with client(url) as service:
            await service.chat([{"role": "user", "content": "q"}], model="x")

    with pytest.raises(ServerError, match=r"is 404: The model 'x' does not exist$"):
        run(scenario())
    assert scripted.count("/v1/chat/completions") == 1  # a 4xx is not retried


def test_chat_503_is_retried_and_a_bad_body_is_an_error(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    scripted.then("/v1/chat/completions", Answer(503, {"error": {"message": "loading"}}))
    scripted.then("/v1/chat/completions", Answer(200, {"choices": []}))

    async def scenario() -> None:
        async with client(url) as service:
            await service.chat([{"role": "user", "content": "q"}])

    with pytest.raises(ServerError, match=r"no choices\[0\]\.message\.content"):
        run(scenario())
    assert scripted.count("/v1/chat/completions") == 2


def test_models_lists_ids_and_sends_the_key(app: tuple[ScriptedApp, str]) -> None:
    scripted, url = app
    assert list_models(url, api_key="k2") == ["m"]
    assert scripted.authorization[-1] == "Bearer k2"

    async def scenario() -> list[str]:
        async with client(url) as service:
            return await service.models()

    assert run(scenario()) == ["m"]
    scripted.then("/v1/models", Answer(401, {"error": {"message": "missing API key"}}))
    with pytest.raises(ServerError, match="/v1/models is 401: missing API key"):
        list_models(url)
    scripted.then("/v1/models", Answer(200, {"object": "list", "data": []}))
    with pytest.raises(ServerError, match="lists no model"):
        list_models(url)


def test_list_models_without_a_server_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="connection refused") as caught:
        list_models(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert caught.value.exit_code is ExitCode.SERVER
