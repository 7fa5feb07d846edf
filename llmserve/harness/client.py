"""The typed client of this service's HTTP API, for every tool: health, /info, /predict, and
the OpenAI API's GET /v1/models and POST /v1/chat/completions.

Three levels, from the plainest:
  * `post_predict(client, prompt)`: one timed POST /predict on an httpx.AsyncClient the caller
    owns, no retries (the benchmark's users each hold their own connection). Returns a
    `Prediction`: the responses, the client's timing and the engine's headers.
  * `ServiceClient(url, ...)`: one connection pool for a run, with tenacity retries for
    `wait_healthy()`, `info()` and `predict()`. Retried: connection failures, timeouts and
    502/503/504 (a server still loading, restarting or behind a proxy). Not retried: other
    4xx/5xx, which a second try would not change; their {"error": ...} message is shown as it
    is. `retries=0` makes every call a single try (a benchmark must not re-time a request).
  * `get_info(url)` and `predict_sync(url, prompt)`: blocking one-shot calls for scripts.

Every failure the user can act on is a `llmserve.errors.ServerError` (exit code 4):
`ServerDown` when GET / never answered 200 in time, `RetryableStatus` for a 502/503/504 that
was not (or no longer) retried. A transport error of `post_predict` is httpx's own (the
caller decides); `ServiceClient` turns it into a ServerError once its tries run out.

The OpenAI API: `post_chat(client, messages)` is the /predict of /v1/chat/completions (one
timed call, no retries), `ServiceClient.chat()` and `.models()` retry like `predict()`, and
`list_models(url)` is the blocking one-shot. A chat answer is a `Prediction` too: its one
response is choices[0].message.content and `engine_output_tokens` is usage.completion_tokens
(engine headers are read when the server sends them). `api_key` sends
`Authorization: Bearer <key>`, which /v1/* needs when the server's API_KEY is set.

Headers of /predict: X-Engine-Seconds (engine time of the request), X-Output-Tokens (output
token ids the engine generated) and X-Engine-TTFT (arrival to first token, in the engine).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from llmserve.errors import ServerError

RETRY_STATUSES = frozenset({502, 503, 504})
Prompts = str | Sequence[str]


class ServerDown(ServerError):
    """GET / never answered 200 within the wait: no server, or one still loading."""


class RetryableStatus(ServerError):
    """A 502/503/504 answer: worth another try, and a ServerError once the tries run out."""


@dataclass(frozen=True)
class Prediction:
    """One answered POST /predict."""

    responses: list[str]  # one per prompt sent, in order (a single prompt: a list of one)
    latency_s: float  # send to whole body received, on the client's monotonic clock
    t_start: float  # epoch seconds of the send
    t_end: float  # t_start + latency_s
    engine_seconds: float | None  # X-Engine-Seconds
    engine_output_tokens: int | None  # X-Output-Tokens
    engine_ttft: float | None = None  # X-Engine-TTFT

    @property
    def output_tokens(self) -> int:
        """The engine's count of output tokens; a ServerError when the server sent none."""
        if self.engine_output_tokens is None:
            raise ServerError("/predict sent no X-Output-Tokens header")
        return self.engine_output_tokens

    @property
    def ttft_s(self) -> float:
        """Time to first token as a client of /predict sees it, at most.

        /predict does not stream: its TTFT is the engine's (arrival to first token) plus all
        time spent outside the engine (HTTP, parsing, templating, the response), an upper
        bound on what a streaming client would see.
        """
        if self.engine_ttft is None or self.engine_seconds is None:
            raise ServerError("/predict sent no X-Engine-TTFT / X-Engine-Seconds header")
        return self.engine_ttft + max(self.latency_s - self.engine_seconds, 0.0)


@dataclass(frozen=True)
class Info:
    """A typed view of GET /info: {"status", "settings", "engine"}; `data` is all of it."""

    data: dict[str, Any]

    @property
    def status(self) -> str | None:
        return self.data.get("status")

    @property
    def settings(self) -> dict[str, Any]:
        """The server's public settings ({} when it reports none)."""
        return dict(self.data.get("settings") or {})

    @property
    def engine(self) -> dict[str, Any]:
        """The engine's facts: model_dir, dtype, quantization, max_model_len, device, ...
        ({} while the engine is not loaded)."""
        return dict(self.data.get("engine") or {})

    @property
    def model_dir(self) -> str | None:
        return self.engine.get("model_dir")

    @property
    def dtype(self) -> str | None:
        return self.engine.get("dtype")

    @property
    def max_batch_prompts(self) -> int | None:
        limit = self.settings.get("max_batch_prompts")
        return int(limit) if limit else None


# --- parsing, shared by every call ----------------------------------------------------------


def error_message(response: httpx.Response) -> str:
    """The server's {"error": ...} message (OpenAI's {"error": {"message": ...}} too), else the
    start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        return str(error)
    return str(body)[:200]


def _float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = _float_header(response, name)
    return None if value is None else int(value)


def _base(url: httpx.URL | str) -> str:
    return str(url).rstrip("/")


def _responses(response: httpx.Response, url: str, count: int, as_list: bool) -> list[str]:
    try:
        value = response.json()["response"]
    except (ValueError, KeyError, TypeError):
        raise ServerError(f"{url}/predict: no 'response' in {response.text[:200]!r}") from None
    values = value if as_list else [value]
    if not isinstance(values, list) or len(values) != count:
        raise ServerError(
            f"{url}/predict: sent {count} prompts, got {type(value).__name__} "
            f"{str(value)[:100]!r}"
        )
    if not all(isinstance(v, str) for v in values):
        raise ServerError(f"{url}/predict: a response is not a string")
    return values


def _payload(prompt: Prompts, as_list: bool | None) -> tuple[dict[str, Any], int, bool]:
    """The request body, the number of prompts and whether the answer is a list."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    listed = not isinstance(prompt, str) if as_list is None else as_list
    if not prompts or (not listed and len(prompts) != 1):
        raise ValueError("one prompt unless sent as a list, and at least one")
    return {"prompt": prompts if listed else prompts[0]}, len(prompts), listed


def _check_status(
    response: httpx.Response, url: str, path: str, status_hints: Mapping[int, str]
) -> None:
    """RetryableStatus for a status worth retrying, ServerError (with its hint) for any other
    that is not 200."""
    if response.status_code in RETRY_STATUSES:
        raise RetryableStatus(
            f"POST {path} is {response.status_code}: {error_message(response)}"
        )
    if response.status_code != 200:
        hint = status_hints.get(response.status_code)
        raise ServerError(
            f"POST {url}{path} is {response.status_code}: {error_message(response)}"
            + (f" ({hint})" if hint else "")
        )


def _prediction(
    response: httpx.Response,
    url: str,
    count: int,
    listed: bool,
    t_start: float,
    latency: float,
    status_hints: Mapping[int, str],
) -> Prediction:
    _check_status(response, url, "/predict", status_hints)
    return Prediction(
        responses=_responses(response, url, count, listed),
        latency_s=latency,
        t_start=t_start,
        t_end=t_start + latency,
        engine_seconds=_float_header(response, "X-Engine-Seconds"),
        engine_output_tokens=_int_header(response, "X-Output-Tokens"),
        engine_ttft=_float_header(response, "X-Engine-TTFT"),
    )


# --- one call, no retries ---------------------------------------------------------------------


async def post_predict(
    client: httpx.AsyncClient,
    prompt: Prompts,
    *,
    as_list: bool | None = None,
    status_hints: Mapping[int, str] | None = None,
) -> Prediction:
    """One POST /predict on `client` (whose base_url is the service), timed from send to the
    whole body received. A string is sent as one prompt, a sequence as a list request;
    `as_list=True` sends {"prompt": [...]} even for one prompt. `status_hints` adds advice to
    the error of a status (e.g. {413: "lower --batch-size"}).

    Raises ServerError for a non-200 answer (RetryableStatus for 502/503/504) or a body that
    does not answer every prompt; transport errors are httpx's.
    """
    payload, count, listed = _payload(prompt, as_list)
    t_start = time.time()
    start = time.perf_counter()
    response = await client.post("/predict", json=payload)
    latency = time.perf_counter() - start
    return _prediction(response, _base(client.base_url), count, listed, t_start, latency,
                       status_hints or {})


def predict_sync(url: str, prompt: Prompts, timeout: float = 600.0) -> Prediction:
    """One blocking POST /predict (no retries), e.g. a warm-up request; errors as above,
    and a transport error is a ServerError too."""
    payload, count, listed = _payload(prompt, None)
    t_start = time.time()
    start = time.perf_counter()
    try:
        response = httpx.post(f"{_base(url)}/predict", json=payload, timeout=timeout)
    except httpx.TransportError as error:
        raise ServerError(f"POST {_base(url)}/predict failed: {describe(error)}") from None
    latency = time.perf_counter() - start
    return _prediction(response, _base(url), count, listed, t_start, latency, {})


def get_info(url: str, timeout: float = 30.0) -> dict[str, Any]:
    """GET /info of the service at `url`, blocking; a ServerError when it does not answer 200.
    (`Info(get_info(url))` is the typed view.)"""
    try:
        response = httpx.get(f"{_base(url)}/info", timeout=timeout)
    except httpx.TransportError as error:
        raise ServerError(f"GET {_base(url)}/info failed: {describe(error)}") from None
    if response.status_code != 200:
        raise ServerError(
            f"GET {_base(url)}/info is {response.status_code}: {error_message(response)}"
        )
    return dict(response.json())


# --- the OpenAI API: /v1/models and /v1/chat/completions ------------------------------------

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}
CHAT_PATH = "/v1/chat/completions"


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The Authorization header for /v1/* when the server's API_KEY is set ({} without a key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def chat_payload(
    messages: Sequence[Message],
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """The body of POST /v1/chat/completions; unset fields are left to the server's defaults."""
    if not messages:
        raise ValueError("a chat request needs at least one message")
    body: dict[str, Any] = {"messages": [dict(m) for m in messages]}
    for key, value in (("model", model), ("max_tokens", max_tokens),
                       ("temperature", temperature)):
        if value is not None:
            body[key] = value
    return body


def _chat_prediction(
    response: httpx.Response,
    url: str,
    t_start: float,
    latency: float,
    status_hints: Mapping[int, str],
) -> Prediction:
    _check_status(response, url, CHAT_PATH, status_hints)
    try:
        body = response.json()
        content = body["choices"][0]["message"]["content"]
        usage = body.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ServerError(
            f"{url}{CHAT_PATH}: no choices[0].message.content in {response.text[:200]!r}"
        ) from None
    if content is None:  # OpenAI sends null content for a refusal or tool call: no text
        content = ""
    if not isinstance(content, str):
        raise ServerError(f"{url}{CHAT_PATH}: message.content is {type(content).__name__}")
    completion_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Prediction(
        responses=[content],
        latency_s=latency,
        t_start=t_start,
        t_end=t_start + latency,
        engine_seconds=_float_header(response, "X-Engine-Seconds"),
        engine_output_tokens=(completion_tokens if isinstance(completion_tokens, int)
                              else _int_header(response, "X-Output-Tokens")),
        engine_ttft=_float_header(response, "X-Engine-TTFT"),
    )


async def post_chat(
    client: httpx.AsyncClient,
    messages: Sequence[Message],
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    status_hints: Mapping[int, str] | None = None,
) -> Prediction:
    """One non-streaming POST /v1/chat/completions on `client` (base_url: the service; its
    headers carry any API key), timed from send to the whole body. The Prediction's one
    response is choices[0].message.content, its engine_output_tokens usage.completion_tokens.

    Raises ServerError for a non-200 answer (RetryableStatus for 502/503/504) or a body without
    choices[0].message.content; transport errors are httpx's.
    """
    payload = chat_payload(messages, model, max_tokens, temperature)
    t_start = time.time()
    start = time.perf_counter()
    response = await client.post(CHAT_PATH, json=payload)
    latency = time.perf_counter() - start
    return _chat_prediction(response, _base(client.base_url), t_start, latency,
                            status_hints or {})


def _model_ids(response: httpx.Response, url: str) -> list[str]:
    if response.status_code != 200:
        raise ServerError(
            f"GET {url}/v1/models is {response.status_code}: {error_message(response)}"
        )
    try:
        ids = [entry["id"] for entry in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise ServerError(f"{url}/v1/models: no data[].id in {response.text[:200]!r}") from None
    if not ids or not all(isinstance(i, str) for i in ids):
        raise ServerError(f"{url}/v1/models lists no model")
    return ids


def list_models(url: str, api_key: str | None = None, timeout: float = 30.0) -> list[str]:
    """The model ids of GET /v1/models, blocking; a ServerError when it does not answer them."""
    try:
        response = httpx.get(f"{_base(url)}/v1/models", headers=auth_headers(api_key),
                             timeout=timeout)
    except httpx.TransportError as error:
        raise ServerError(f"GET {_base(url)}/v1/models failed: {describe(error)}") from None
    return _model_ids(response, _base(url))


# --- a run's client, with retries ---------------------------------------------------------


def describe(error: BaseException | None) -> str:
    """A transport error or failed answer in a few words."""
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return "connection refused or unreachable"
    return str(error) or type(error).__name__


def _retryable(error: BaseException) -> bool:
    return isinstance(error, RetryableStatus | httpx.TransportError)


class ServiceClient:
    """One connection pool for a run against one service; safe to share between concurrent
    tasks (`connections` is how many may be in flight). Use `async with` or `aclose()`.

    `retries` is how many times a failed /predict is tried again, with exponential back-off
    up to `backoff_max` seconds (0: never). `tool` names the program in the retry notes
    printed to stderr. `status_hints` as for `post_predict`. `api_key` is sent as a Bearer
    token on every request (for /v1/*).
    """

    def __init__(
        self,
        url: str,
        timeout: float = 600.0,
        retries: int = 5,
        connections: int = 1,
        backoff_max: float = 30.0,
        tool: str = "llmserve",
        status_hints: Mapping[int, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.url = _base(url)
        self.retries = retries
        self.backoff_max = backoff_max
        self.tool = tool
        self.status_hints = dict(status_hints or {})
        self.http = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=connections + 2),
            headers=auth_headers(api_key),  # /predict ignores it; /v1/* needs it when set
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _retrying(
        self,
        what: str,
        stop: Any,
        failure: type[ServerError] = ServerError,
        backoff_max: float | None = None,
    ) -> AsyncRetrying:
        def give_up(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            raise failure(
                f"{what} at {self.url} failed after {state.attempt_number} tries: "
                f"{describe(error)}"
            ) from error

        said: list[str] = []

        def say_retry(state: RetryCallState) -> None:
            # Silence for minutes would look like a hang, so say what is being waited on;
            # once per distinct reason, not once per poll of a loading server.
            error = state.outcome.exception() if state.outcome else None
            reason = describe(error)
            if said and said[-1] == reason:
                return
            said.append(reason)
            print(f"{self.tool}: {what} at {self.url}: {reason}; retrying", file=sys.stderr)

        return AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop,
            wait=wait_exponential(multiplier=0.5, max=backoff_max or self.backoff_max),
            before_sleep=say_retry,
            retry_error_callback=give_up,
            reraise=False,
        )

    async def wait_healthy(self, wait_s: float, loading_s: float) -> dict[str, Any]:
        """GET / until it is 200; returns its body.

        No answer at all is retried for `wait_s` seconds (a server still starting up); a
        server answering 503 is loading its engine, which takes minutes, so it gets
        `loading_s` seconds. Raises ServerDown when the time runs out.
        """

        async def once() -> dict[str, Any]:
            response = await self.http.get("/")
            if response.status_code in RETRY_STATUSES:
                raise RetryableStatus(
                    f"GET / is {response.status_code}: {error_message(response)}"
                )
            if response.status_code != 200:
                raise ServerError(f"GET {self.url}/ is {response.status_code}, expected 200")
            return dict(response.json())

        def stop(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            limit = loading_s if isinstance(error, RetryableStatus) else wait_s
            pause = state.upcoming_sleep
            return state.seconds_since_start + pause >= limit

        # Polls at most 5 s apart: a loading server should be used soon after it is ready.
        async for attempt in self._retrying("health check", stop, ServerDown, 5.0):
            with attempt:
                return await once()
        raise AssertionError("unreachable")

    async def info(self) -> Info | None:
        """/info, or None for a server without it (a tool may still run, with less detail)."""
        response = await self.http.get("/info")
        if response.status_code != 200:
            return None
        return Info(dict(response.json()))

    async def predict(self, prompt: Prompts, as_list: bool | None = None) -> Prediction:
        """POST /predict as `post_predict`, tried again (up to `retries` times) on a transport
        error or 502/503/504; a ServerError when the tries run out."""
        stop = stop_after_attempt(self.retries + 1)
        async for attempt in self._retrying("POST /predict", stop):
            with attempt:
                return await post_predict(self.http, prompt, as_list=as_list,
                                          status_hints=self.status_hints)
        raise AssertionError("unreachable")

    async def chat(
        self,
        messages: Sequence[Message],
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Prediction:
        """POST /v1/chat/completions as `post_chat`, retried like `predict()`."""
        stop = stop_after_attempt(self.retries + 1)
        async for attempt in self._retrying(f"POST {CHAT_PATH}", stop):
            with attempt:
                return await post_chat(self.http, messages, model=model, max_tokens=max_tokens,
                                       temperature=temperature, status_hints=self.status_hints)
        raise AssertionError("unreachable")

    async def models(self) -> list[str]:
        """The model ids of GET /v1/models (a transport error is retried like `predict()`)."""
        stop = stop_after_attempt(self.retries + 1)
        async for attempt in self._retrying("GET /v1/models", stop):
            with attempt:
                return _model_ids(await self.http.get("/v1/models"), self.url)
        raise AssertionError("unreachable")
