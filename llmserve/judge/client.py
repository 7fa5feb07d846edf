"""HTTP to the service: health, /info and /predict, with retries and back-off (tenacity).

Retried: connection failures, timeouts and 502/503/504 (a server still loading, restarting
or behind a proxy). Not retried: other 4xx/5xx, which a second try would not change; their
{"error": ...} message is shown as it is.
"""

from __future__ import annotations

import sys
import time
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

from llmserve.judge import JudgeError

RETRY_STATUSES = frozenset({502, 503, 504})


class ServerError(JudgeError):
    """The server is unreachable or kept failing; `bash run_model.sh` may not be running."""


class ServerDown(ServerError):
    """GET / never answered 200 within the wait: no server, or one still loading."""


class _Retryable(Exception):
    """A response worth another try; carries what to say if the tries run out."""


@dataclass(frozen=True)
class Prediction:
    responses: list[str]  # one per prompt sent, in order
    latency_s: float
    t_start: float  # epoch seconds
    t_end: float
    engine_seconds: float | None  # X-Engine-Seconds
    engine_output_tokens: int | None  # X-Output-Tokens


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _Retryable | httpx.TransportError)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return "connection refused or unreachable"
    return str(error) or type(error).__name__


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:200]


def _float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class JudgeClient:
    """One connection pool for the run; safe to share between concurrent tasks."""

    def __init__(
        self, url: str, timeout: float, retries: int, concurrency: int = 1, backoff_max: float = 30
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_max = backoff_max
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=concurrency + 2),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

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
                f"{_describe(error)}"
            ) from error

        said: list[str] = []

        def say_retry(state: RetryCallState) -> None:
            # Silence for minutes would look like a hang, so say what is being waited on;
            # once per distinct reason, not once per poll of a loading server.
            error = state.outcome.exception() if state.outcome else None
            reason = _describe(error)
            if said and said[-1] == reason:
                return
            said.append(reason)
            print(f"judge: {what} at {self.url}: {reason}; retrying", file=sys.stderr)

        return AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop,
            wait=wait_exponential(multiplier=0.5, max=backoff_max or self.backoff_max),
            before_sleep=say_retry,
            retry_error_callback=give_up,
            reraise=False,
        )

    async def wait_healthy(self, wait_s: float, loading_s: float) -> dict[str, Any]:
        """GET / until it is 200.

        No answer at all is retried for `wait_s` seconds (a server still starting up); a
        server answering 503 is loading its engine, which takes minutes, so it gets
        `loading_s` seconds.
        """

        async def once() -> dict[str, Any]:
            response = await self._client.get("/")
            if response.status_code in RETRY_STATUSES:
                raise _Retryable(f"GET / is {response.status_code}: {_error_message(response)}")
            if response.status_code != 200:
                raise ServerError(f"GET {self.url}/ is {response.status_code}, expected 200")
            return dict(response.json())

        def stop(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            limit = loading_s if isinstance(error, _Retryable) else wait_s
            pause = state.upcoming_sleep
            return state.seconds_since_start + pause >= limit

        # Polls at most 5 s apart: a loading server should be used soon after it is ready.
        async for attempt in self._retrying("health check", stop, ServerDown, 5.0):
            with attempt:
                return await once()
        raise AssertionError("unreachable")

    async def info(self) -> dict[str, Any] | None:
        """/info, or None for a server without it (the judge still runs, with less detail)."""
        response = await self._client.get("/info")
        if response.status_code != 200:
            return None
        return dict(response.json())

    async def predict(self, prompts: list[str], as_list: bool) -> Prediction:
        """POST /predict; `as_list` sends {"prompt": [...]} even for one prompt."""
        payload: dict[str, Any] = {"prompt": prompts if as_list else prompts[0]}

        async def once() -> Prediction:
            t_start = time.time()
            start = time.perf_counter()
            response = await self._client.post("/predict", json=payload)
            latency = time.perf_counter() - start
            if response.status_code in RETRY_STATUSES:
                raise _Retryable(
                    f"POST /predict is {response.status_code}: {_error_message(response)}"
                )
            if response.status_code != 200:
                hint = " (lower --batch-size)" if response.status_code == 413 else ""
                raise ServerError(
                    f"POST {self.url}/predict is {response.status_code}: "
                    f"{_error_message(response)}{hint}"
                )
            return Prediction(
                responses=self._responses(response, len(prompts), as_list),
                latency_s=latency,
                t_start=t_start,
                t_end=t_start + latency,
                engine_seconds=_float_header(response, "X-Engine-Seconds"),
                engine_output_tokens=_int_or_none(_float_header(response, "X-Output-Tokens")),
            )

        stop = stop_after_attempt(self.retries + 1)
        async for attempt in self._retrying("POST /predict", stop):
            with attempt:
                return await once()
        raise AssertionError("unreachable")

    def _responses(self, response: httpx.Response, count: int, as_list: bool) -> list[str]:
        try:
            value = response.json()["response"]
        except (ValueError, KeyError, TypeError):
            raise ServerError(
                f"{self.url}/predict: no 'response' in {response.text[:200]!r}"
            ) from None
        values = value if as_list else [value]
        if not isinstance(values, list) or len(values) != count:
            raise ServerError(
                f"{self.url}/predict: sent {count} prompts, got {type(value).__name__} "
                f"{str(value)[:100]!r}"
            )
        if not all(isinstance(v, str) for v in values):
            raise ServerError(f"{self.url}/predict: a response is not a string")
        return values


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)
