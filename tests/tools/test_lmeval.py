"""`llmserve lmeval`: lm-evaluation-harness (in .venv-lmeval) as a client of the OpenAI API.

The fast tests check the task file and the arguments. The oracle tests run the real lm_eval
(its venv is built on first use, about a minute) against a scripted OpenAI server that answers
GSM8K from the data file: exactly right for some questions and wrong for the others, so the
reported exact_match proves the prompt reached the server, the answer came back through our
task's filters, and the score is the one expected. The engine test runs it against the real
server.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.types import Receive, Scope, Send

from llmserve.lmeval import run
from llmserve.lmeval.cli import build_parser
from llmserve.paths import GSM8K_TEST, REPO_ROOT
from tests.asgi import read_body, send_json, serve_in_thread
from tests.conftest import Server

KEY = "sekrit-key"
QUESTION = re.compile(r"Question: (.*?)\nAnswer:", re.S)


def gsm8k_rows(count: int) -> list[dict[str, str]]:
    with GSM8K_TEST.open(encoding="utf-8") as file:
        return [json.loads(next(file)) for _ in range(count)]


class Oracle:
    """An OpenAI-compatible server that knows GSM8K: the first `right` test questions get their
    reference answer (reasoning and `#### N`), any other question a wrong `#### -1`. It checks
    the bearer key and records the request bodies."""

    def __init__(self, right: int, key: str | None = None) -> None:
        rows = gsm8k_rows(GSM8K_TEST.read_text().count("\n"))
        self.answers = {row["question"]: row["answer"] for row in rows}
        self.right = {row["question"] for row in rows[:right]}
        self.key = key
        self.bodies: list[dict[str, Any]] = []

    def answer(self, prompt: str) -> str:
        asked = QUESTION.findall(prompt)[-1].strip()  # the last Question: is the one asked
        if asked in self.right:
            return self.answers[asked]
        return "I think it is\n#### -1"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        if self.key and headers.get(b"authorization") != f"Bearer {self.key}".encode():
            await send_json(send, 401, {"error": {"message": "bad key", "type": "auth",
                                                  "param": None, "code": "invalid_api_key"}})
            return
        path = scope["path"]
        if path == "/v1/models":
            await send_json(send, 200, {"object": "list", "data": [
                {"id": "oracle", "object": "model", "created": 0, "owned_by": "tests"}]})
            return
        body = json.loads(await read_body(receive))
        self.bodies.append(body)
        usage = {"prompt_tokens": 1, "completion_tokens": 7, "total_tokens": 8}
        if path == "/v1/chat/completions":
            prompt = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
            choice = {"index": 0, "finish_reason": "stop",
                      "message": {"role": "assistant", "content": self.answer(prompt)}}
            await send_json(send, 200, {"id": "c", "object": "chat.completion", "created": 0,
                                        "model": body["model"], "choices": [choice],
                                        "usage": usage})
        elif path == "/v1/completions":
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices = [{"index": i, "finish_reason": "stop", "text": " " + self.answer(p)}
                       for i, p in enumerate(prompts)]
            await send_json(send, 200, {"id": "t", "object": "text_completion", "created": 0,
                                        "model": body["model"], "choices": choices,
                                        "usage": usage})
        else:
            await send_json(send, 404, {"error": {"message": "no such path"}})


def lmeval(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmserve", "lmeval", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def summary_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def lm_eval_results(out: Path) -> dict[str, Any]:
    return run.read_results(run.results_file(out))


# --- fast: the task file and the arguments ---------------------------------------------------


def test_task_yaml_reads_the_repository_gsm8k_file(tmp_path: Path) -> None:
    folder = run.write_task(tmp_path / "tasks")
    config = yaml.safe_load((folder / f"{run.TASK}.yaml").read_text())
    data = Path(config["dataset_kwargs"]["data_files"]["test"])
    assert data.is_absolute() and data == GSM8K_TEST.resolve()
    assert config["task"] == run.TASK and config["dataset_path"] == "json"
    assert [f["name"] for f in config["filter_list"]] == list(run.FILTERS)


def test_every_shipped_task_is_written_with_its_data_file(tmp_path: Path) -> None:
    """ARC-Easy (multiple choice) ships beside GSM8K, its data in data/arc_easy (no hub)."""
    assert {"gsm8k_llmserve", "arc_easy_llmserve"} <= set(run.shipped_tasks())
    folder = run.write_task(tmp_path / "tasks")
    config = yaml.safe_load((folder / "arc_easy_llmserve.yaml").read_text())
    data = Path(config["dataset_kwargs"]["data_files"]["validation"])
    assert data.is_absolute() and data == (REPO_ROOT / "data/arc_easy/validation.jsonl")
    assert config["output_type"] == "multiple_choice"
    assert len(data.read_text().splitlines()) == 570


def test_shipped_task_path_is_relative_to_the_repository_root() -> None:
    """docs/lmeval.md's raw lm_eval command runs from the repository root with the shipped yaml."""
    shipped = yaml.safe_load((run.TASKS_DIR / f"{run.TASK}.yaml").read_text())
    assert (REPO_ROOT / shipped["dataset_kwargs"]["data_files"]["test"]).resolve() == \
        GSM8K_TEST.resolve()


def test_missing_data_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = lmeval("--data", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert "none.jsonl" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, says", [
    (["--limit", "0"], "--limit"),
    (["--api", "grpc"], "--api"),
    (["--num-fewshot", "-1"], "--num-fewshot"),
    (["--num-concurrent", "x"], "--num-concurrent"),
])
def test_bad_arguments_exit_2(args: list[str], says: str) -> None:
    result = lmeval(*args)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr


def test_command_for_chat_and_completions(tmp_path: Path) -> None:
    config = run.LmEvalConfig(url="http://h:1/", model="m", out=tmp_path, api="chat", limit=5,
                              num_concurrent=3)
    argv = run.command(config, Path("lm_eval"), tmp_path)
    assert argv[argv.index("--model") + 1] == "local-chat-completions"
    assert "--apply_chat_template" in argv and argv[argv.index("--limit") + 1] == "5"
    model_args = argv[argv.index("--model_args") + 1]
    assert "base_url=http://h:1/v1/chat/completions" in model_args
    assert "num_concurrent=3" in model_args and "tokenized_requests=False" in model_args
    config.api = "completions"
    argv = run.command(config, Path("lm_eval"), tmp_path)
    assert argv[argv.index("--model") + 1] == "local-completions"
    assert "--apply_chat_template" not in argv
    model_args = argv[argv.index("--model_args") + 1]
    assert "base_url=http://h:1/v1/completions" in model_args
    assert "tokenizer_backend=None" in model_args  # never a hub tokenizer


def test_other_tasks_score_token_ids_with_the_remote_tokenizer(tmp_path: Path) -> None:
    """--tasks arc_easy: lm-eval sends token ids (echo + logprobs) tokenized by /tokenize."""
    config = run.LmEvalConfig(url="http://h:1", model="m", out=tmp_path, api="completions",
                              tasks=["arc_easy", "mmlu"])
    argv = run.command(config, Path("lm_eval"), tmp_path)
    assert argv[argv.index("--tasks") + 1] == "arc_easy,mmlu"
    model_args = argv[argv.index("--model_args") + 1]
    assert "tokenized_requests=True" in model_args and "tokenizer_backend=remote" in model_args


def test_metrics_reads_every_metric_of_the_tasks() -> None:
    results = {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.5,
                                        "acc_stderr,none": 0.03, "acc_norm,none": 0.25}}}
    found = run.metrics(results, ["arc_easy"])
    assert [(m.name, m.value, m.stderr) for m in found] == [
        ("acc,none", 0.5, 0.03), ("acc_norm,none", 0.25, None)]
    assert found[0].line() == "arc_easy acc,none: 0.5000 ± 0.0300"


def test_other_tasks_need_completions() -> None:
    result = lmeval("--tasks", "arc_easy")
    assert result.returncode == 2 and "--api completions" in result.stderr


def test_server_down_is_exit_4(tmp_path: Path) -> None:
    from llmserve.process import free_port

    result = lmeval("--url", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path))
    assert result.returncode == 4, result.stderr
    assert "/v1/models" in result.stderr and "Traceback" not in result.stderr


def test_help_names_the_raw_command() -> None:
    text = build_parser().format_help()
    assert "local-chat-completions" in text and "--include_path llmserve/lmeval/tasks" in text


# --- the real lm_eval against a scripted server ----------------------------------------------


@pytest.fixture(scope="module")
def oracle() -> Iterator[tuple[Oracle, str]]:
    app = Oracle(right=2, key=KEY)
    with serve_in_thread(app) as url:
        yield app, url


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_lm_eval_scores_the_oracle(oracle: tuple[Oracle, str], api: str,
                                   tmp_path: Path) -> None:
    """2 of 3 answered right: both filters report exactly 2/3, over 3 samples."""
    app, url = oracle
    app.bodies.clear()
    out = tmp_path / api
    result = lmeval("--url", url, "--api", api, "--limit", "3", "--api-key", KEY,
                    "--num-fewshot", "2", "--max-gen-toks", "50", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    found = lm_eval_results(out)
    numbers = found["results"][run.TASK]
    assert numbers["exact_match,strict-match"] == pytest.approx(2 / 3)
    assert numbers["exact_match,flexible-extract"] == pytest.approx(2 / 3)
    assert found["n-samples"][run.TASK]["effective"] == 3
    summary = summary_of(out)
    assert summary["accuracy"]["strict-match"]["exact_match"] == pytest.approx(2 / 3)
    assert "strict-match: exact_match 0.6667" in result.stdout
    # What lm-eval sent: our model name, our max tokens, 2 few-shot examples + the question.
    assert len(app.bodies) == 3
    body = app.bodies[0]
    assert body["model"] == "oracle" and body["max_tokens"] == 50
    if api == "chat":
        users = [m for m in body["messages"] if m["role"] == "user"]
        assert len(users) == 3  # few-shot as multi-turn: 2 examples, then the question
    else:
        assert body["prompt"].count("Question:") == 3


def test_wrong_key_fails_with_the_server_message(oracle: tuple[Oracle, str],
                                                 tmp_path: Path) -> None:
    _, url = oracle
    result = lmeval("--url", url, "--limit", "1", "--api-key", "wrong", "--out", str(tmp_path))
    assert result.returncode == 4
    assert "401" in result.stderr and "bad key" in result.stderr


# --- the real server --------------------------------------------------------------------------


@pytest.mark.engine
def test_lm_eval_gsm8k_against_the_real_server(server: Server, tmp_path: Path) -> None:
    """lm-eval's chat client against vLLM behind /v1: a number for 5 questions. The session
    server has MAX_MODEL_LEN=1024, so 1-shot and 64 new tokens keep each request inside it."""
    out = tmp_path / "lmeval"
    result = lmeval("--url", server.url, "--limit", "5", "--num-fewshot", "1",
                    "--max-gen-toks", "64", "--num-concurrent", "5", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    found = lm_eval_results(out)
    numbers = found["results"][run.TASK]
    for name in run.FILTERS:
        assert 0.0 <= numbers[f"exact_match,{name}"] <= 1.0
    assert found["n-samples"][run.TASK]["effective"] == 5
    samples = [json.loads(line) for path in out.rglob("samples_*.jsonl")
               for line in path.read_text().splitlines()]
    # lm-eval 0.4.13 writes one line per question and filter (here 5 x 2 = 10 lines).
    assert len({sample["doc_id"] for sample in samples}) == 5
    assert all(sample["resps"][0][0].strip() for sample in samples)  # the model answered


@pytest.mark.engine
def test_lm_eval_arc_easy_loglikelihoods_against_the_real_server(server: Server,
                                                                 tmp_path: Path) -> None:
    """lm-eval's local-completions scores the shipped ARC-Easy (a multiple-choice task) by
    loglikelihood through /v1/completions: token-id prompts, echo + logprobs, the remote
    tokenizer (/tokenize). Every choice gets a finite, negative loglikelihood."""
    out = tmp_path / "arc"
    result = lmeval("--url", server.url, "--api", "completions", "--tasks",
                    "arc_easy_llmserve", "--limit", "8", "--num-concurrent", "2",
                    "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    found = lm_eval_results(out)
    numbers = found["results"]["arc_easy_llmserve"]
    assert 0.0 <= numbers["acc,none"] <= 1.0 and 0.0 <= numbers["acc_norm,none"] <= 1.0
    assert found["n-samples"]["arc_easy_llmserve"]["effective"] == 8
    samples = [json.loads(line) for path in out.rglob("samples_*.jsonl")
               for line in path.read_text().splitlines()]
    assert len(samples) == 8
    for sample in samples:
        # one [[loglikelihood, is_greedy]] per choice, written by lm-eval as strings
        scores = [float(resp[0][0]) for resp in sample["resps"]]
        assert len(scores) == len(sample["doc"]["choices"]["text"]) >= 3
        assert all(math.isfinite(score) and score < 0 for score in scores), scores
    assert "arc_easy_llmserve acc" in result.stdout
