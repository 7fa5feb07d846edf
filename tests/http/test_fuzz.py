"""Property-based fuzzing: no input gets a 5xx, and every error answers {"error": "<string>"}
(on /v1/*, OpenAI's {"error": {"message", "type", "param", "code"}}).

Fast part (the app over a fake engine that refuses what the real tokenizer refuses, served by
uvicorn on a free port in a thread: real HTTP, one lifespan, no in-process ASGI client):
- schemathesis drives every operation of the app's own OpenAPI schema, valid bodies
  (positive) and schema-violating ones (negative), checking not_a_server_error,
  response_schema_conformance and the error shape;
- raw requests to every endpoint: any method, query, content type and body (random bytes,
  any JSON, deep nesting, huge numbers, NaN), which a schema-driven fuzzer does not send;
- prompts of odd text (unpaired surrogates, control characters, noncharacters), which
  Hypothesis' text strategies leave out by default;
- explicit bodies: each 5xx found (issue #11) and the body-size limit.
Real-engine part (`engine`): the same generators, fewer cases, over HTTP against the session
server, since the real tokenizer is what fails on odd text.

Case counts are the constants below; a longer run: FUZZ_EXAMPLES=20000 (fast part) and
FUZZ_ENGINE_EXAMPLES=1000 (engine part), e.g.
`FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/http/test_fuzz.py -m "not engine"`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from llmserve.engines.base import Delta, Generation, Prompt, Sampling
from llmserve.server.app import create_app
from llmserve.server.openai.errors import is_openai_path
from llmserve.server.schema import SURROGATE
from llmserve.settings import Settings
from tests.asgi import serve_in_thread
from tests.conftest import Server
from tests.fake_engine import FakeEngine, FakeEngineFactory, prompt_text
from tests.waiting import wait_app_ready

# Generated cases per endpoint and generator in CI (the issue asks for at least 1000 per
# endpoint); FUZZ_EXAMPLES / FUZZ_ENGINE_EXAMPLES raise them for a longer run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
ENGINE_EXAMPLES = int(os.environ.get("FUZZ_ENGINE_EXAMPLES", "60"))

ENDPOINTS = [
    ("GET", "/"), ("GET", "/info"), ("POST", "/predict"),
    ("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
]  # fmt: skip
# The operations with a request body, and a body each serves.
BODY_OPERATIONS = {
    "/predict": {"prompt": "hi"},
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"prompt": "hi"},
    "/tokenize": {"prompt": "hi"},
    "/detokenize": {"tokens": [104, 105]},
}
# Valid bodies the schema cannot tell from served ones, each a 400 naming it: a token id
# outside the vocabulary (the engine's, unknown when the schema is written), and a
# tool_choice naming a function not in tools (JSON Schema cannot compare two fields' values).
BEYOND_THE_SCHEMA = ("outside the vocabulary", "which is not in tools")
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
MAX_BATCH_PROMPTS = 8  # small, so that the schema's maxItems and a 413 list are both reached
MAX_BODY_BYTES = 64 * 1024  # small, so that over-limit bodies are cheap to send

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a slow case is not a failure here; a 5xx or a wrong shape is
    database=None,
    derandomize=True,  # CI sees the same cases on every run
    suppress_health_check=list(HealthCheck),
)


class TokenizerStrictEngine(FakeEngine):
    """The fake engine, refusing what the real tokenizer refuses: text that is not valid
    Unicode (a lone surrogate cannot be encoded; the Rust tokenizer raises TypeError on it).
    An exception here that the server does not prevent is a 500, as with the real engine."""

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        for prompt in prompts:
            prompt_text(prompt).encode("utf-8")  # UnicodeEncodeError on a lone surrogate
        return await super().generate(prompts, sampling)

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        prompt_text(prompt).encode("utf-8")
        async for delta in super().stream(prompt, sampling):
            yield delta


def fuzz_settings(tmp_path: Path) -> Settings:
    return Settings(
        model_dir=tmp_path,
        max_model_len=1024,
        max_new_tokens=32,
        max_batch_prompts=MAX_BATCH_PROMPTS,
        max_body_bytes=MAX_BODY_BYTES,
    )


@contextmanager
def http_client(app: FastAPI, ready: bool = True) -> Iterator[httpx.Client]:
    """An httpx client of `app` served by uvicorn (its lifespan loads the fake engine once);
    waits for the engine to be ready unless `ready` is False."""
    with serve_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url, timeout=60) as http:
        if ready:
            wait_app_ready(app)
        yield http


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(fuzz_settings(tmp_path_factory.mktemp("fuzz")), _strict_factory)


def _strict_factory(settings_: Settings, model_dir: Path) -> TokenizerStrictEngine:
    return TokenizerStrictEngine(settings_, model_dir)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with http_client(app) as http:
        yield http


def assert_error_shape(status: int, body: bytes, method: str = "POST", path: str = "") -> None:
    """No 5xx but a 503 (which only a loading or dead engine answers, tested as such);
    every 4xx and 503 body is exactly {"error": "<one line>"}, or on /v1/* and the tokenizer
    routes exactly OpenAI's
    {"error": {"message": "<one line>", "type": str, "param": str | null, "code": ...}}."""
    assert status < 500 or status == 503, f"server error {status}: {body[:300]!r}"
    if status >= 400 and method != "HEAD":
        data = json.loads(body)
        assert isinstance(data, dict) and set(data) == {"error"}, data
        if is_openai_path(path):
            error = data["error"]
            assert isinstance(error, dict), data
            assert set(error) == {"message", "type", "param", "code"}, data
            assert isinstance(error["type"], str) and error["type"], data
            assert error["param"] is None or isinstance(error["param"], str), data
            assert error["code"] is None or isinstance(error["code"], str), data
            message = error["message"]
        else:
            message = data["error"]
        assert isinstance(message, str) and message, data
        assert "\n" not in message, data


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schemathesis check: the documented {"error": string} shape of every error (but for
    `/`'s 503, the health body a poller reads, which response_schema_conformance checks)."""
    if case.path == "/" and response.status_code == 503:
        return None
    assert_error_shape(response.status_code, response.content, case.method, case.path)
    return None


CHECKS = [not_a_server_error, response_schema_conformance, error_shape]


# --- strategies ------------------------------------------------------------------------------

# Any code point; lone surrogates (which st.characters leaves out unless asked) and control,
# format, private-use and unassigned characters are also put into strings on purpose, since
# Hypothesis draws them too rarely by chance (8 strings in 1000 held a surrogate).
any_text = st.text(st.characters(codec=None), max_size=40)
odd_chars = st.one_of(
    st.characters(codec=None, categories=["Cs"]),
    st.characters(codec=None, categories=["Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"]),
)


def _insert(text: str, char: str, at: int) -> str:
    at %= len(text) + 1
    return text[:at] + char + text[at:]


odd_text = st.one_of(any_text, st.builds(_insert, any_text, odd_chars, st.integers(0, 40)))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(odd_text, inner, max_size=5),
    max_leaves=20,
)


def nested(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return ('{"a":' * depth + "1" + closer * depth).encode()
    return (opener * depth + closer * depth).encode()


raw_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),  # NaN and Infinity as Python writes them
    json_values.map(lambda v: json.dumps({"prompt": v}).encode()),
    st.integers(1, 5000).map(lambda n: b'{"prompt": ' + nested(n) + b"}"),
    st.integers(1, 5000).map(lambda n: nested(n, "{")),
    st.integers(1, 6000).map(lambda n: b'{"prompt": "x", "n": ' + b"9" * n + b"}"),
    st.integers(MAX_BODY_BYTES - 64, MAX_BODY_BYTES + 64).map(
        lambda n: b'{"prompt": "' + b"a" * max(n - 14, 0) + b'"}'
    ),
    st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1"]).map(
        lambda codec: '{"prompt": "héllo"}'.encode(codec)
    ),
)
# /v1 bodies: any value in each field the OpenAI routes read, beside otherwise valid fields.
V1_FIELDS = [
    "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "stop", "seed", "n",
    "stream", "stream_options", "logprobs", "echo", "best_of", "ignore_eos",
]  # fmt: skip
OK_MESSAGES = [{"role": "user", "content": "hi"}]
v1_bodies = st.one_of(
    json_values.map(lambda v: {"messages": v}),
    st.builds(
        lambda role, content: {"messages": [{"role": role, "content": content}]},
        st.sampled_from(["system", "developer", "user", "assistant", "tool", ""]),
        json_values,
    ),
    st.builds(lambda f, v: {"messages": OK_MESSAGES, f: v}, st.sampled_from(V1_FIELDS),
              json_values),
    st.builds(lambda f, v: {"prompt": "x", f: v}, st.sampled_from(V1_FIELDS), json_values),
).map(lambda body: json.dumps(body).encode())  # fmt: skip
raw_bodies = st.one_of(raw_bodies, v1_bodies)
content_types = st.sampled_from(
    [None, "application/json", "text/plain", "application/x-www-form-urlencoded", "*/*", "x"]
)
queries = st.dictionaries(
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=8),
    st.text(st.characters(codec="utf-8"), max_size=8),  # a URL cannot carry a surrogate
    max_size=3,
)
prompts = st.one_of(odd_text, st.lists(odd_text, min_size=0, max_size=MAX_BATCH_PROMPTS + 2))


def expected_for(prompt: Any) -> tuple[int, str | None]:
    """The status (and message) parse_predict's rules give a `prompt` of odd text."""
    items = [prompt] if isinstance(prompt, str) else prompt
    if not items:
        return 422, "prompt is an empty list"
    if len(items) > MAX_BATCH_PROMPTS:
        return 413, None
    for index, item in enumerate(items):
        field = "prompt" if isinstance(prompt, str) else f"prompt[{index}]"
        if not item.strip():
            return 422, f"{field} is empty"
        match = SURROGATE.search(item)
        if match:
            return 422, f"{field} has an unpaired surrogate at position {match.start()}"
    return 200, None


# --- fast: in-process, fake engine -----------------------------------------------------------


def operations(client: httpx.Client) -> list[Any]:
    """The operations of the served schema; their cases are sent with `call(client)`."""
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    return [result.ok() for result in schema.get_all_operations()]


def call(case: Any, client: httpx.Client) -> Any:
    return case.call(base_url=str(client.base_url), timeout=60)


def test_the_schema_declares_the_predict_body_and_error_shapes(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    prompt = body["schema"]["properties"]["prompt"]
    assert body["schema"]["required"] == ["prompt"]
    assert prompt["oneOf"][1]["maxItems"] == MAX_BATCH_PROMPTS
    for path, method in [("/", "get"), ("/info", "get"), ("/predict", "post")]:
        responses = spec["paths"][path][method]["responses"]
        statuses = ("400", "413", "422", "503", "504") if path == "/predict" else ("413",)
        for status in ("404", "405", *statuses):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema["required"] == ["error"], (path, status)
    health = spec["paths"]["/"]["get"]["responses"]["503"]["content"]["application/json"]
    assert health["schema"]["required"] == ["status", "model"]  # what a poller reads
    for path, method in [("/v1/models", "get"), ("/v1/chat/completions", "post"),
                         ("/v1/completions", "post")]:  # fmt: skip
        responses = spec["paths"][path][method]["responses"]
        assert "401" not in responses  # API_KEY is unset here
        for status in ("400", "404", "405", "413", "503", "504"):
            schema = responses[status]["content"]["application/json"]["schema"]
            error = schema["properties"]["error"]
            assert error["required"] == ["message", "type", "param", "code"], (path, status)
    for path in ("/v1/chat/completions", "/v1/completions"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert "$defs" not in json.dumps(body)  # inlined: a fuzzer can resolve it
        assert body["schema"]["properties"]["n"]["anyOf"][0]["maximum"] == 128  # MAX_N


@pytest.mark.parametrize("path", list(BODY_OPERATIONS))
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_predict(client: httpx.Client, mode: GenerationMode, path: str) -> None:
    """Every operation with inputs (/predict, /v1/chat/completions, /v1/completions,
    /tokenize, /detokenize) from its schema: valid and invalid bodies."""
    (operation,) = [op for op in operations(client) if op.path == path]
    statuses: dict[int, int] = {}

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = call(case, client)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 400 and len(errors) < 5:
            errors.append(response.text[:300])
        if response.status_code == 400:
            refused.append(response.text)
        if mode is GenerationMode.NEGATIVE and response.status_code < 400 and len(served) < 5:
            served.append(repr(case.body)[:3000])  # a body the schema refuses, but served (whole)
        case.validate_response(response, checks=CHECKS)

    errors: list[str] = []
    refused: list[str] = []
    served: list[str] = []
    run()
    assert sum(statuses.values()) >= EXAMPLES * 0.9, statuses  # Hypothesis ran them all
    assert not [s for s in statuses if s >= 500], statuses
    if mode is GenerationMode.POSITIVE:  # a body the schema allows is served
        assert set(statuses) - {400} == {200}, (statuses, errors)
        assert all(any(m in e for m in BEYOND_THE_SCHEMA) for e in refused), refused[:5]
    elif path == "/predict":
        assert set(statuses) <= {400, 413, 422}, (statuses, served)
    else:  # OpenAI's API: one status for a bad body; 404 for a model name not served
        assert set(statuses) <= {400, 404, 413}, (statuses, served)


def test_schemathesis_parameterless_operations(client: httpx.Client) -> None:
    """GET /, GET /info and GET /v1/models take no input: the schema gives one case each
    (the raw fuzzing below sends them everything else)."""
    for operation in operations(client):
        if operation.path in BODY_OPERATIONS:
            continue
        case = operation.Case()
        response = call(case, client)
        assert response.status_code == 200
        case.validate_response(response, checks=CHECKS)


def test_every_operation_conforms_while_the_engine_loads(tmp_path: Path) -> None:
    """While loading: `/` answers its documented 503 body, /predict and /v1's generating
    operations their 503 error."""
    gate = threading.Event()
    app = create_app(fuzz_settings(tmp_path), FakeEngineFactory(gate=gate))
    with http_client(app, ready=False) as http:
        try:
            statuses = {}
            for operation in operations(http):
                served = BODY_OPERATIONS.get(operation.path)
                case = operation.Case(**({"body": served} if served else {}))
                response = call(case, http)
                statuses[operation.path] = response.status_code
                # not_a_server_error left out: a 503 while loading is the documented answer
                checks = [response_schema_conformance, error_shape]
                case.validate_response(response, checks=checks)
            assert statuses == {
                "/": 503, "/info": 200, "/predict": 503, "/v1/models": 200,
                "/v1/chat/completions": 503, "/v1/completions": 503,
                "/tokenize": 503, "/detokenize": 503, "/tokenizer_info": 503,
            }  # fmt: skip
        finally:
            gate.set()  # the loader thread ends before the server stops


@pytest.mark.parametrize(("method", "path"), [*ENDPOINTS, ("GET", "/no-such-path")])
def test_any_request_to_every_endpoint(client: httpx.Client, method: str, path: str) -> None:
    """Any method, query, content type and body to each endpoint: never a 5xx, every error
    in the documented shape."""
    statuses: dict[int, int] = {}

    @FUZZ_SETTINGS
    @given(
        method=st.sampled_from(METHODS) | st.just(method),
        query=queries,
        content_type=content_types,
        body=raw_bodies,
    )
    def run(method: str, query: dict[str, str], content_type: str | None, body: bytes) -> None:
        headers = {"content-type": content_type} if content_type else {}
        response = client.request(method, path, params=query, headers=headers, content=body)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert_error_shape(response.status_code, response.content, method, path)
        if len(body) > MAX_BODY_BYTES:
            assert response.status_code == 413, response.text

    run()
    assert sum(statuses.values()) == EXAMPLES, statuses
    assert not [s for s in statuses if s >= 500], statuses


def test_odd_text_prompts(client: httpx.Client) -> None:
    """Prompts of any code points, as JSON escapes (how a client sends a lone surrogate):
    exactly the rules' status and message; a prompt the rules accept is answered."""
    statuses: dict[int, int] = {}

    @FUZZ_SETTINGS
    @given(prompt=prompts)
    def run(prompt: Any) -> None:
        response = client.post("/predict", content=json.dumps({"prompt": prompt}).encode())
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert_error_shape(response.status_code, response.content)
        status, message = expected_for(prompt)
        assert response.status_code == status, (prompt, response.text)
        if message is not None:
            assert response.json() == {"error": message}
        surrogates[0] += bool(message and "surrogate" in message)

    surrogates = [0]
    run()
    assert sum(statuses.values()) == EXAMPLES, statuses
    assert statuses.get(422) and statuses.get(200), statuses  # both kinds were reached
    assert surrogates[0] > EXAMPLES // 10, surrogates  # and lone surrogates, often


# Each a 500 with a traceback before issue #11's fixes (the first three from the real server,
# the last with a strict tokenizer), now a 4xx naming the problem.
EXPLICIT_BODIES = [
    (b'{"prompt": "ab\\ud800"}', 422, "prompt has an unpaired surrogate at position 2"),
    (
        b'{"prompt": ["ok", "x", "y", "abcde\\udc00"]}',
        422,
        "prompt[3] has an unpaired surrogate at position 5",
    ),
    (b'{"prompt": "\\udbff\\udbff"}', 422, "prompt has an unpaired surrogate at position 0"),
    (
        b'{"prompt": ' + nested(20_000) + b"}",
        400,
        "body is not valid JSON: nested 20001 levels deep; at most 512",
    ),
    (nested(5_000, "{"), 400, "body is not valid JSON: nested 5000 levels deep; at most 512"),
    (
        b'{"prompt": "hi", "n": ' + b"9" * 5000 + b"}",
        400,
        "body is not valid JSON: a number has 5000 digits; at most 4300",
    ),
    (b'{"prompt": -' + b"1" * 5000 + b"}", 400, "a number has 5000 digits"),
    (b'{"prompt": NaN}', 400, "body is not valid JSON: NaN is not a JSON value"),
    (b'{"prompt": "hi", "t": -Infinity}', 400, "-Infinity is not a JSON value"),
    (b'{"prompt": "caf\xe9"}', 400, "body is not valid JSON"),  # latin-1, not UTF-8
    (b'{"prompt": "a\x01"}', 400, "Invalid control character"),  # raw, unescaped
]


@pytest.mark.parametrize(("body", "status", "words"), EXPLICIT_BODIES)
def test_explicit_bad_bodies(client: httpx.Client, body: bytes, status: int, words: str) -> None:
    response = client.post("/predict", content=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert_error_shape(response.status_code, response.content)


@pytest.mark.parametrize(
    "prompt",
    ["a\x00b", "\x00", "\x1b[31mred\x7f", "\ufffe\uffff\U0010ffff", "\u200b\u202e", "😀 pair"],
)
def test_control_characters_and_noncharacters_are_served(client: httpx.Client, prompt: str) -> None:
    """Text a tokenizer encodes (SmolLM2's encodes all of these) is a prompt like any other."""
    response = client.post("/predict", content=json.dumps({"prompt": prompt}).encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"response": " ".join(f"echo: {prompt}".split())}


def test_body_limit_from_content_length(client: httpx.Client) -> None:
    body = b'{"prompt": "' + b"a" * MAX_BODY_BYTES + b'"}'
    response = client.post("/predict", content=body)
    assert response.status_code == 413
    assert response.json() == {
        "error": f"request body is too large: {len(body)} bytes; at most {MAX_BODY_BYTES} "
        "(MAX_BODY_BYTES)"
    }
    assert client.request("GET", "/info", content=body).status_code == 413  # every route


def test_body_limit_counted_while_streaming(client: httpx.Client) -> None:
    """No Content-Length (chunked): the bytes are counted as they arrive."""
    chunks = [b'{"prompt": "', *[b"a" * 4096] * (MAX_BODY_BYTES // 4096 + 1), b'"}']
    response = client.post("/predict", content=iter(chunks))
    assert response.status_code == 413
    assert response.json() == {
        "error": f"request body is too large: over {MAX_BODY_BYTES} bytes; at most "
        f"{MAX_BODY_BYTES} (MAX_BODY_BYTES)"
    }
    just_fits = b'{"prompt": "' + b"a" * (MAX_BODY_BYTES - 14) + b'"}'
    assert len(just_fits) == MAX_BODY_BYTES
    assert client.post("/predict", content=iter([just_fits])).status_code == 200


def test_framework_errors_answer_in_our_shape(client: httpx.Client) -> None:
    response = client.get("/no-such-path")
    assert response.status_code == 404
    assert response.json() == {"error": "no such path: /no-such-path"}
    response = client.delete("/predict")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json() == {"error": "method DELETE is not allowed on /predict"}


def test_validation_errors_answer_in_our_shape(tmp_path: Path) -> None:
    """A RequestValidationError (no route raises one today; a typed parameter would)."""
    app = create_app(fuzz_settings(tmp_path), engine_factory=_strict_factory)

    @app.get("/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    with http_client(app) as http:
        response = http.get("/typed", params={"n": "x"})
    assert response.status_code == 422
    assert response.json() == {
        "error": "query.n: Input should be a valid integer, unable to parse string as an integer"
    }


# --- engine: the real tokenizer over real HTTP -----------------------------------------------

ENGINE_SETTINGS = settings(
    max_examples=ENGINE_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def log_errors(server: Server, offset: int) -> list[str]:
    """Tracebacks the server logged after `offset` (an unhandled exception in a request)."""
    text = server.log.read_text(errors="replace")[offset:]
    return re.findall(r"Exception in ASGI application|Traceback \(most recent call last\)", text)


@pytest.mark.engine
def test_engine_schemathesis_and_odd_text(server: Server) -> None:
    """The real engine's tokenizer behind /predict: schema-driven bodies (valid and invalid)
    and odd-text prompts, ENGINE_EXAMPLES each; no 5xx, no traceback in the log."""
    offset = len(server.log.read_text(errors="replace"))
    with server.client() as http:
        spec = http.get("/openapi.json").json()
        schema = schemathesis.openapi.from_dict(spec)
        (operation,) = [
            result.ok()
            for result in schema.get_all_operations()
            if result.ok().path == "/predict"
        ]
        statuses: dict[int, int] = {}

        @ENGINE_SETTINGS
        @given(
            case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        )
        def run_schema(case: Any) -> None:
            response = case.call(base_url=server.url, timeout=300)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=CHECKS)

        run_schema()

        max_prompts = spec["paths"]["/predict"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]["properties"]["prompt"]["oneOf"][1]["maxItems"]
        odd: dict[int, int] = {}

        @ENGINE_SETTINGS
        @given(prompt=st.one_of(odd_text, st.lists(odd_text, min_size=1, max_size=4)))
        def run_odd(prompt: Any) -> None:
            response = http.post("/predict", content=json.dumps({"prompt": prompt}).encode())
            odd[response.status_code] = odd.get(response.status_code, 0) + 1
            assert_error_shape(response.status_code, response.content)
            status, message = expected_for(prompt)
            assert response.status_code == status, (prompt, response.text)
            if message is not None:
                assert response.json() == {"error": message}

        assert max_prompts >= 4
        run_odd()
        for body, status, words in EXPLICIT_BODIES:
            response = http.post("/predict", content=body)
            assert response.status_code == status, (body[:60], response.text)
            assert words in response.json()["error"]
        assert http.post("/predict", json={"prompt": "hi"}).status_code == 200
    assert not [s for s in [*statuses, *odd] if s >= 500], (statuses, odd)
    assert sum(statuses.values()) >= ENGINE_EXAMPLES * 0.9 and sum(odd.values()) == ENGINE_EXAMPLES
    assert log_errors(server, offset) == []


@pytest.mark.engine
def test_engine_body_limit_refused_before_the_body_is_read(server: Server) -> None:
    """A Content-Length over MAX_BODY_BYTES (the default here) is answered 413 at once: the
    server does not wait for, nor read, the body it announced."""
    with server.client() as http:
        limit = http.get("/info").json()["settings"]["max_body_bytes"]
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
            + b'{"prompt": "'  # and nothing more: the server must not wait for the rest
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:200]
    assert json.loads(body) == {
        "error": f"request body is too large: {limit + 1} bytes; at most {limit} "
        "(MAX_BODY_BYTES)"
    }
    with httpx.Client(base_url=server.url, timeout=300) as http:  # the server still serves
        assert http.post("/predict", json={"prompt": "hi"}).status_code == 200


def expected_v1(text: str, completion: bool) -> tuple[int, str | None]:
    """The status (and words of the message) /v1 gives a prompt or message of odd text."""
    if completion and not text:
        return 400, "at least 1 character"
    if SURROGATE.search(text):
        return 400, "unpaired surrogate"
    return 200, None


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_odd_text_v1(client: httpx.Client, path: str) -> None:
    """Messages and raw prompts of any code points (JSON-escaped, as a client sends a lone
    surrogate), streamed or not: a 400 naming the field for text no tokenizer accepts, else
    an answer."""
    statuses: dict[int, int] = {}
    completion = path == "/v1/completions"

    @FUZZ_SETTINGS
    @given(text=odd_text, stream=st.booleans())
    def run(text: str, stream: bool) -> None:
        body = (
            {"prompt": text} if completion else {"messages": [{"role": "user", "content": text}]}
        )
        response = client.post(path, content=json.dumps({**body, "stream": stream}).encode())
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert_error_shape(response.status_code, response.content, path=path)
        status, words = expected_v1(text, completion)
        assert response.status_code == status, (text, response.text)
        if words is not None:
            error = response.json()["error"]
            assert words in error["message"] and error["param"] in ("prompt", "messages")
        elif stream:
            assert response.text.endswith("data: [DONE]\n\n"), response.text

    run()
    assert sum(statuses.values()) == EXAMPLES, statuses
    assert statuses.get(400) and statuses.get(200), statuses
