"""One lm-evaluation-harness run against the service: the task file, the `lm_eval` command,
its process, and the accuracy read back from lm-eval's results JSON.

lm-eval runs in .venv-lmeval as a plain HTTP client of /v1: `local-chat-completions` (chat,
with --apply_chat_template, few-shot turns as a conversation) or `local-completions` (raw
few-shot prompt). tokenized_requests=False and no tokenizer backend: nothing is fetched from a
hub, and generation tasks need no token counts. HF_*_OFFLINE keep datasets and the hub from
reaching for the network; the task's data is the repository's own GSM8K file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from llmserve.errors import ExitCode, LlmserveError
from llmserve.harness.venvs import last_error
from llmserve.paths import GSM8K_TEST, REPO_ROOT

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
TASK = "gsm8k_llmserve"
FILTERS = ("strict-match", "flexible-extract")
Api = Literal["chat", "completions"]
LM_EVAL_MODEL: dict[str, str] = {"chat": "local-chat-completions",
                                 "completions": "local-completions"}
API_PATH: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1"}


@dataclass
class LmEvalConfig:
    """What `llmserve lmeval` runs; `url` is the service root (http://host:port)."""

    url: str
    model: str
    out: Path
    api: Api = "chat"
    limit: int | None = None
    num_concurrent: int = 1
    max_retries: int = 3
    max_gen_toks: int = 256  # lm-eval's default for API models (gsm8k sets none)
    num_fewshot: int | None = None  # None: the task's (5)
    timeout: int = 600
    data: Path = GSM8K_TEST
    extra: list[str] = field(default_factory=list)  # passed to lm_eval as they are
    tasks: list[str] = field(default_factory=lambda: [TASK])  # lm-eval task names

    @property
    def scores_text(self) -> bool:
        """Tasks other than the shipped GSM8K (multiple choice, perplexity) score text by its
        tokens' logprobs: lm-eval sends token ids (echo, logprobs) and tokenizes through the
        server's /tokenize (its remote tokenizer), so no hub tokenizer is needed."""
        return self.tasks != [TASK]


def task_yaml(name: str = TASK, data: Path = GSM8K_TEST) -> dict[str, Any]:
    """A shipped task's config with its data files made absolute (lm_eval may run anywhere):
    relative paths are the repository root's; GSM8K's test file is `data`."""
    config = yaml.safe_load((TASKS_DIR / f"{name}.yaml").read_text())
    files: dict[str, str] = config["dataset_kwargs"]["data_files"]
    for split, file in files.items():
        path = data if name == TASK and split == "test" else REPO_ROOT / file
        if not path.is_file():
            raise LlmserveError(f"data file {str(path)!r} of task {name} does not exist")
        files[split] = str(path.resolve())
    return dict(config)


def shipped_tasks() -> list[str]:
    """The tasks in llmserve/lmeval/tasks (their data in data/, no network)."""
    return sorted(path.stem for path in TASKS_DIR.glob("*.yaml"))


def write_task(folder: Path, data: Path = GSM8K_TEST) -> Path:
    """Write the shipped task configs for this run into `folder` (lm_eval's --include_path)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in shipped_tasks():
        config = task_yaml(name, data)
        (folder / f"{name}.yaml").write_text(
            yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        )
    return folder


def model_args(config: LmEvalConfig) -> str:
    """lm-eval's --model_args for our /v1 endpoint (its values must not hold commas)."""
    if "," in config.model:
        raise LlmserveError(f"model name {config.model!r} holds a comma, which lm-eval's "
                            "--model_args cannot carry")
    args = {
        "model": config.model,
        "base_url": config.url.rstrip("/") + API_PATH[config.api],
        "num_concurrent": config.num_concurrent,
        "max_retries": config.max_retries,
        "tokenized_requests": config.scores_text,
        "max_gen_toks": config.max_gen_toks,
        "timeout": config.timeout,
    }
    if config.api == "completions" and config.scores_text:
        args["tokenizer_backend"] = "remote"  # the server's /tokenize and /detokenize
    elif config.api == "completions":
        # "auto" would probe the server for a tokenizer endpoint, then load a HF tokenizer
        # named by `model` from the hub: neither exists here, and generation needs neither.
        args["tokenizer_backend"] = None
    return ",".join(f"{key}={value}" for key, value in args.items())


def command(config: LmEvalConfig, lm_eval: Path, include: Path) -> list[str]:
    """The `lm_eval run ...` argv of this run."""
    argv = [
        str(lm_eval), "run",
        "--model", LM_EVAL_MODEL[config.api],
        "--model_args", model_args(config),
        "--tasks", ",".join(config.tasks),
        "--include_path", str(include),
        "--output_path", str(config.out),
        "--log_samples",
    ]
    if config.api == "chat":
        argv.append("--apply_chat_template")  # few-shot examples become user/assistant turns
    if config.limit is not None:
        argv += ["--limit", str(config.limit)]
    if config.num_fewshot is not None:
        argv += ["--num_fewshot", str(config.num_fewshot)]
    return argv + list(config.extra)


def lm_eval_env(api_key: str | None) -> dict[str, str]:
    """lm_eval's environment: offline, outside the serving venv, the key where lm-eval reads it
    (its local API models send `Authorization: Bearer $OPENAI_API_KEY`)."""
    env = {**os.environ, **OFFLINE_ENV}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    if api_key:
        env["OPENAI_API_KEY"] = api_key
    return env


def run_lm_eval(argv: Sequence[str], env: dict[str, str], log: Path, echo: bool = True) -> None:
    """Run lm_eval, its output into `log` (and to stderr with `echo`); LlmserveError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        assert process.stdout is not None
        try:
            for line in process.stdout:
                out.write(line)
                if echo:
                    sys.stderr.write(line)
        finally:
            code = process.wait()
    if code != 0:
        raise LlmserveError(f"lm_eval exited with code {code}: {last_error(log)} (log: {log})",
                            ExitCode.FAILED)


def results_file(out: Path) -> Path:
    """The newest results_*.json lm-eval wrote under `out` (it adds a folder per model)."""
    found = sorted(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise LlmserveError(f"lm_eval wrote no results_*.json under {out}", ExitCode.FAILED)
    return found[-1]


@dataclass(frozen=True)
class Accuracy:
    """One filter's exact_match of the task."""

    task: str
    filter: str
    exact_match: float
    stderr: float | None
    samples: int

    def line(self) -> str:
        spread = f" ± {self.stderr:.4f}" if isinstance(self.stderr, float) else ""
        return (f"{self.task} {self.filter}: exact_match {self.exact_match:.4f}{spread} "
                f"(n={self.samples})")


def accuracies(results: dict[str, Any], task: str = TASK) -> list[Accuracy]:
    """exact_match per filter from lm-eval's results JSON; LlmserveError when it holds none."""
    numbers = results.get("results", {}).get(task)
    if not isinstance(numbers, dict):
        raise LlmserveError(f"lm-eval's results hold no task {task!r}", ExitCode.FAILED)
    samples = results.get("n-samples", {}).get(task, {}).get("effective")
    found = []
    for name in FILTERS:
        value = numbers.get(f"exact_match,{name}")
        if isinstance(value, int | float):
            stderr = numbers.get(f"exact_match_stderr,{name}")
            found.append(Accuracy(task, name, float(value),
                                  float(stderr) if isinstance(stderr, int | float) else None,
                                  int(samples) if isinstance(samples, int) else -1))
    if not found:
        raise LlmserveError(f"lm-eval's results for {task!r} hold no exact_match",
                            ExitCode.FAILED)
    return found


@dataclass(frozen=True)
class Metric:
    """One metric of one task (and filter) from lm-eval's results, e.g. arc_easy acc."""

    task: str
    name: str  # "acc,none", "acc_norm,none", "word_perplexity,none", ...
    value: float
    stderr: float | None

    def line(self) -> str:
        spread = f" ± {self.stderr:.4f}" if isinstance(self.stderr, float) else ""
        return f"{self.task} {self.name}: {self.value:.4f}{spread}"


def metrics(results: dict[str, Any], tasks: Sequence[str]) -> list[Metric]:
    """Every numeric metric of `tasks` (stderr beside it); LlmserveError for a task with none."""
    found = []
    for task in tasks:
        numbers = results.get("results", {}).get(task)
        if not isinstance(numbers, dict):
            raise LlmserveError(f"lm-eval's results hold no task {task!r}", ExitCode.FAILED)
        for name, value in numbers.items():
            if "_stderr," in name or not isinstance(value, int | float) or "," not in name:
                continue
            metric, _, filt = name.partition(",")
            stderr = numbers.get(f"{metric}_stderr,{filt}")
            found.append(Metric(task, name, float(value),
                                float(stderr) if isinstance(stderr, int | float) else None))
    return found


def read_results(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))
