"""The judge scoring through the OpenAI API (`--api chat`): a scripted server that answers
with each item's reference (so every score is exactly 1) and one run against the real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from llmserve.errors import ExitCode
from llmserve.judge.cli import main
from llmserve.judge.runner import DETAILS, SESSIONS, SUMMARY
from llmserve.model import resolve_model_dir
from llmserve.settings import Settings
from tests.asgi import read_body, send_json, serve_in_thread
from tests.conftest import write_chat_jsonl

QA = [
    ("test", "What is the capital of France?", "The capital of France is Paris."),
    ("test", "中国的首都是哪里？", "中国的首都是北京。"),
    ("test", "How many legs does a spider have?", "A spider has eight legs."),
]
KEY = "judge-key"


class ChatOracle:
    """/v1/models lists "oracle"; /v1/chat/completions answers a known question with its
    reference and reports 11 completion tokens; wrong key: 401; /predict: 500 (never used)."""

    def __init__(self) -> None:
        self.references = {question: answer for _, question, answer in QA}
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.paths.append(path)
        body = await read_body(receive)
        if path == "/":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/info":
            await send_json(send, 200, {"status": "ready", "settings": {}, "engine": {}})
        elif dict(scope["headers"]).get(b"authorization") != f"Bearer {KEY}".encode():
            await send_json(send, 401, {"error": {"message": "wrong key"}})
        elif path == "/v1/models":
            await send_json(send, 200, {"object": "list", "data": [{"id": "oracle"}]})
        elif path == "/v1/chat/completions":
            request = json.loads(body)
            self.bodies.append(request)
            answer = self.references[request["messages"][-1]["content"]]
            await send_json(send, 200, {
                "object": "chat.completion", "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 11, "total_tokens": 16}})
        else:
            await send_json(send, 500, {"error": "the judge must not call " + path})


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_chat_jsonl(tmp_path / "data.jsonl", QA)


@pytest.fixture(scope="module")
def oracle() -> Iterator[tuple[ChatOracle, str]]:
    app = ChatOracle()
    with serve_in_thread(app) as url:
        yield app, url


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / DETAILS).read_text().splitlines()]


def test_chat_api_scores_each_question_as_one_user_message(
        oracle: tuple[ChatOracle, str], data: Path, tmp_path: Path) -> None:
    app, url = oracle
    app.bodies.clear()
    out = tmp_path / "run"
    tokenizer = resolve_model_dir(Settings())
    code = main(["--url", url, "--api", "chat", "--api-key", KEY, "--data", str(data),
                 "--out", str(out), "--tokenizer", str(tokenizer), "--concurrency", "2",
                 "--min-score", "0.99"])
    assert code == ExitCode.OK
    assert "/predict" not in app.paths
    assert sorted(b["messages"][0]["content"] for b in app.bodies) == sorted(q for _, q, _ in QA)
    assert all(b["model"] == "oracle" and len(b["messages"]) == 1
               and b["messages"][0]["role"] == "user" for b in app.bodies)
    found = records(out)
    assert len(found) == 3
    for record in found:
        assert record["scores"]["cjk"] == pytest.approx(1.0)
        assert record["engine_output_tokens"] == 11  # usage.completion_tokens
        assert record["output_tokens"] > 0 and record["engine_seconds"] is None
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["run"]["api"] == "chat" and summary["run"]["model"] == "oracle"
    assert "api_key" not in summary["run"] and KEY not in (out / SUMMARY).read_text()
    assert summary["results"]["engine_output_tokens"] == 33
    session = json.loads((out / SESSIONS).read_text().splitlines()[0])
    assert (session["api"], session["model"]) == ("chat", "oracle")


def test_chat_api_wrong_key_is_a_server_error(oracle: tuple[ChatOracle, str], data: Path,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _, url = oracle
    code = main(["--url", url, "--api", "chat", "--api-key", "nope", "--data", str(data),
                 "--out", str(tmp_path / "run"), "--tokenizer",
                 str(resolve_model_dir(Settings()))])
    assert code == ExitCode.SERVER
    assert "401: wrong key" in capsys.readouterr().err


@pytest.mark.parametrize("args, says", [
    (["--api", "chat", "--batch"], "--batch sends lists to /predict"),
    (["--model", "m"], "--model names the model of /v1/chat/completions"),
    (["--api", "grpc"], "--api"),
])
def test_chat_api_argument_errors_exit_2(args: list[str], says: str, data: Path,
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["--data", str(data), "--out", str(tmp_path / "run"), *args])
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    assert code == ExitCode.USAGE
    assert says in capsys.readouterr().err


@pytest.mark.engine
def test_chat_api_against_the_real_server(server: Any, data: Path, tmp_path: Path) -> None:
    """vLLM behind /v1/chat/completions: every item answered, scored and its tokens counted,
    the engine's usage.completion_tokens beside the judge's own count."""
    out = tmp_path / "run"
    code = main(["--url", server.url, "--api", "chat", "--data", str(data), "--out", str(out)])
    assert code == ExitCode.OK
    found = records(out)
    assert len(found) == len(QA)
    for record in found:
        assert record["prediction"].strip()
        assert set(record["scores"]) == {"cjk", "compat"}
        assert 0.0 <= record["scores"]["cjk"] <= 1.0
        assert record["output_tokens"] > 0
        assert 0 < record["engine_output_tokens"] <= 32  # the session's MAX_NEW_TOKENS
    summary = json.loads((out / SUMMARY).read_text())
    results = summary["results"]
    assert results["items"] == len(QA)
    assert results["output_tokens"] == sum(r["output_tokens"] for r in found)
    assert summary["run"]["api"] == "chat" and summary["run"]["model"]
