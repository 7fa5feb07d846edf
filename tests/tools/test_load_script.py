"""`llmserve load`: concurrent singles and lists, failures counted, answers matched to prompts.

Fast tests run it against a small scripted ASGI app over real HTTP (uvicorn in a thread): one
that answers right, one that hands list answers to the wrong prompts, one that refuses some
requests. The engine test runs it, small, against the session's real float32 server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmserve import load
from llmserve.errors import ExitCode
from llmserve.load_mix import check
from tests.asgi import read_body, send_json, serve_in_thread
from tests.conftest import Server


class EchoApp:
    """/info and /predict answering "echo: <prompt>"; `mixup` rotates a list's answers
    (each prompt gets its neighbour's), `refuse_every` answers every n-th request 503."""

    def __init__(self, mixup: bool = False, refuse_every: int = 0) -> None:
        self.mixup = mixup
        self.refuse_every = refuse_every
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        status, headers, payload = 200, [], {}
        if scope["path"] == "/info":
            payload = {"status": "ok", "engine": {"dtype": "float32"}}
        else:
            self.requests += 1
            prompt = json.loads(body)["prompt"]
            if self.refuse_every and self.requests % self.refuse_every == 0:
                status, payload = 503, {"error": "busy"}
            elif isinstance(prompt, list):
                answers = [f"echo: {p}" for p in prompt]
                if self.mixup:
                    answers = answers[1:] + answers[:1]
                payload = {"response": answers}
            else:
                payload = {"response": f"echo: {prompt}"}
            headers = [(b"x-output-tokens", b"3")]
        await send_json(send, status, payload, headers)


def serve(app: EchoApp) -> Iterator[str]:
    with serve_in_thread(app, backlog=2048) as url:
        yield url


@pytest.fixture
def echo_url() -> Iterator[str]:
    yield from serve(EchoApp())


@pytest.fixture
def mixup_url() -> Iterator[str]:
    yield from serve(EchoApp(mixup=True))


@pytest.fixture
def refusing_url() -> Iterator[str]:
    yield from serve(EchoApp(refuse_every=7))


def run_load(url: str, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code = load.main(["--url", url, "--out", str(out), "--no-progress", *extra])
    return code, json.loads(out.read_text())


SMALL = ("--singles", "40", "--lists", "2", "--list-size", "10", "--verify", "10")


def test_prompts_are_distinct_past_the_data() -> None:
    prompts = load.distinct_prompts(2000)
    assert len(set(prompts)) == 2000


def test_a_right_server_passes_with_every_figure(echo_url: str, tmp_path: Path) -> None:
    code, record = run_load(echo_url, tmp_path / "load.json", *SMALL)
    assert code == ExitCode.OK
    result = record["result"]
    assert result["failures"] == 0 and result["requests"] == 42
    assert result["kinds"]["single"]["prompts"] == 40
    assert result["kinds"]["list"]["prompts"] == 20
    for kind in ("single", "list"):
        assert result["kinds"][kind]["latency_s"]["p50"] is not None
        assert result["kinds"][kind]["latency_s"]["p99"] is not None
    assert result["output_tokens"] == 42 * 3
    assert result["output_tokens_per_s"] > 0
    assert record["verify"] == {"checked": 10, "mismatches": 0, "examples": []}
    assert record["hardware"]["cpu_count"] and "git" in record


def test_answers_given_to_the_wrong_prompts_fail(mixup_url: str, tmp_path: Path) -> None:
    # Only list answers are rotated: verify every prompt so the sample cannot miss them.
    code, record = run_load(mixup_url, tmp_path / "load.json", "--singles", "5", "--lists", "2",
                            "--list-size", "4", "--verify", "13")
    assert code == ExitCode.FAILED
    assert record["verify"]["mismatches"] == 8
    assert {m["kind"] for m in record["verify"]["examples"]} == {"list"}


def test_refused_requests_are_failures(refusing_url: str, tmp_path: Path) -> None:
    code, record = run_load(refusing_url, tmp_path / "load.json", "--singles", "30",
                            "--lists", "0", "--verify", "0")
    assert code == ExitCode.FAILED
    assert record["result"]["failures"] == 30 // 7
    assert "503" in record["result"]["failure_examples"][0]["error"]


def test_no_server_is_exit_4(tmp_path: Path) -> None:
    code = load.main(["--url", "http://127.0.0.1:9", "--out", str(tmp_path / "x.json"),
                      "--singles", "1", "--lists", "0", "--no-progress"])
    assert code == ExitCode.SERVER


@pytest.mark.engine
def test_small_load_on_the_real_server(server: Server, tmp_path: Path) -> None:
    """Greedy float32 (the session server's settings): every answer under load equals the
    answer its prompt gets alone."""
    code, record = run_load(server.url, tmp_path / "load.json", *SMALL)
    assert code == ExitCode.OK, record["result"]["failure_examples"] or record["verify"]
    assert record["result"]["failures"] == 0
    assert record["result"]["output_tokens"] > 0
    assert record["verify"]["checked"] == 10 and record["verify"]["mismatches"] == 0
    assert record["info"]["engine"]["dtype"] in ("float32", "torch.float32")


def test_mixed_answers_are_checked_against_their_constraints() -> None:
    """load_mix.check: a schema answer and a tool call's arguments validate, or say why."""
    def answer(content: str | None = None, arguments: str | None = None,
               finish: str = "stop") -> dict[str, Any]:
        message: dict[str, Any] = {"content": content}
        if arguments is not None:
            message["tool_calls"] = [{"function": {"name": "get_weather",
                                                   "arguments": arguments}}]
        return {"choices": [{"message": message, "finish_reason": finish}]}

    assert check("schema", answer('{"name": "Ann", "age": 3}')) == ("stop", None)
    why = check("schema", answer('{"name": "Ann"}'))[1]
    assert why is not None and "'age' is a required property" in why
    assert check("schema", answer('{"name": "A', finish="length"))[0] == "length"
    assert check("tool", answer(arguments='{"city": "Paris"}')) == ("stop", None)
    assert check("tool", answer("Paris")) == ("stop", "no tool_calls")
    assert check("tool", answer(arguments='{"city": 3}'))[1] is not None


@pytest.mark.engine
def test_mixed_load_on_both_engines(any_server: Server, tmp_path: Path) -> None:
    """/predict singles and lists with streamed chats, JSON-schema chats and named tool calls
    at once: every request answered, every constrained answer valid (or cut at max_tokens),
    and nothing left in the engine afterwards."""
    code, record = run_load(any_server.url, tmp_path / "load.json", "--singles", "4",
                            "--lists", "1", "--list-size", "4", "--verify", "0", "--mix", "2")
    assert code == ExitCode.OK, (record["result"]["failure_examples"], record.get("mix"))
    assert record["result"]["failures"] == 0
    mix = record["mix"]
    assert mix["failures"] == 0, mix["examples"]
    assert {kind: row["requests"] for kind, row in mix["kinds"].items()} == {
        "stream": 2, "schema": 2, "tool": 2}
    after = record["engine_after"]
    assert after["idle"] and after["engine_unfinished"] == 0 and after["waiting_prompts"] == 0
