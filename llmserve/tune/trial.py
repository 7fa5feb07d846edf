"""One trial: start the real server with the trial's settings, judge it R times, stop it.

The server is `llmserve serve` (what run_model.sh runs, with the engine's launch environment,
e.g. vLLM's CPU defaults) on 127.0.0.1 and a free port, started by harness.launch in its own
process group; only that group is ever stopped. A port taken between choosing and binding it
is answered by choosing another, never by killing its owner. Failures (no start, start
timeout, judge error, trial timeout) become a record with the reason instead of an exception,
so the search goes on.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from llmserve.dataset import load_items, select
from llmserve.errors import LlmserveError, ServerError
from llmserve.harness.client import get_info, predict_sync
from llmserve.harness.launch import env_value, start_service
from llmserve.harness.signals import shielded
from llmserve.harness.stats import mean_spread
from llmserve.judge.runner import RunConfig, Runner
from llmserve.judge.scoring import SCORER_NAMES
from llmserve.process import ServerProcess

# Set in each trial server's environment (its children inherit it): how a rerun recognises
# servers a killed tuner left behind, so that it stops those and nothing else.
MARKER_VAR = "LLMSERVE_TUNE_OUT"
LOG_TAIL_LINES = 15

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Measure:
    """How every trial is judged; the same for all trials of an output folder."""

    data: Path
    split: str = "tune"
    limit: int | None = None
    repeats: int = 1
    mode: str = "batch"  # batch | seq | concurrent
    batch_size: int | None = None
    concurrency: int = 1
    warmup: int = 8  # prompts sent (untimed) before the first judge run
    request_timeout: float = 600.0

    def meta(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Limits:
    start_timeout: float = 600.0  # server health
    trial_timeout: float = 1800.0  # the whole trial, start included


def summarize_repeats(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "score": {name: mean_spread([r["scores"][name] for r in repeats]) for name in SCORER_NAMES},
        "tps": {
            "engine": mean_spread([r["tokens_per_s_engine"] for r in repeats]),
            "wall": mean_spread([r["tokens_per_s_wall"] for r in repeats]),
        },
        "output_tokens": mean_spread([r["output_tokens"] for r in repeats]),
    }


def _log_cause(lines: list[str]) -> str | None:
    """The line of the log that says why: the server's own `error:` line (with its indented
    continuation, where pydantic puts the message), else uvicorn's last ERROR line (a port
    taken, say), else the last exception line."""
    for n in range(len(lines) - 1, -1, -1):
        if lines[n].startswith("error:"):
            more = lines[n + 1].strip() if n + 1 < len(lines) and lines[n + 1][:1] == " " else ""
            return f"{lines[n]} {more}".strip()
    uvicorn = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if uvicorn:
        return uvicorn[-1]
    found = [line.strip() for line in lines if re.match(r"\s*[\w.]*(Error|Exception)\b", line)]
    return found[-1] if found else None


def _failure_reason(message: str, log_text: str) -> str:
    """The first line of the failure and the log's cause: enough for a table."""
    first = message.splitlines()[0].split("; log ")[0]
    cause = _log_cause(log_text.splitlines())
    return f"{first}: {cause[:400]}" if cause else first


def _check_server(info: dict[str, Any], settings: Mapping[str, str], port: int) -> None:
    """The server answering is ours and runs the trial's settings (not a stranger's server
    that took the port, nor a run whose environment lost a setting)."""
    served = info.get("settings") or {}
    if served.get("port") != port:
        raise ServerError(f"the server on port {port} reports PORT={served.get('port')}: not ours")
    for name, value in settings.items():
        got = env_value(served.get(name.lower()))
        if got != value:
            raise ServerError(f"the server runs {name}={got!r}, not {value!r}")


def _warm_up(url: str, measure: Measure) -> None:
    if measure.warmup <= 0:
        return
    items = select(load_items(measure.data), measure.split, measure.warmup)
    try:
        predict_sync(url, [i.question for i in items], timeout=measure.request_timeout)
    except ServerError as error:
        raise ServerError(f"warm-up request: {error}") from None


class Trial:
    """A server with the trial's settings, judged `measure.repeats` times."""

    def __init__(
        self,
        settings: Mapping[str, str],
        measure: Measure,
        limits: Limits,
        trial_dir: Path,
        base_env: Mapping[str, str],
        marker: str,
        on_event: OnEvent | None = None,
    ) -> None:
        self.settings = dict(settings)
        self.measure = measure
        self.limits = limits
        self.dir = trial_dir
        self.base_env = dict(base_env)
        self.marker = marker
        self.on_event = on_event or (lambda name, data: None)
        self.server: ServerProcess | None = None
        self.timed_out = threading.Event()

    def run(self) -> dict[str, Any]:
        """The trial's record: status ok, failed or timeout, with its figures or reason."""
        shutil.rmtree(self.dir, ignore_errors=True)  # an interrupted attempt starts over
        self.dir.mkdir(parents=True)
        began = time.monotonic()
        record: dict[str, Any] = {"status": "ok", "reason": None, "port": None,
                                  "start_s": None, "repeats": []}
        watchdog = threading.Timer(self.limits.trial_timeout, self._expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            url = self._start(record)
            record["start_s"] = round(time.monotonic() - began, 1)
            info = get_info(url)
            _check_server(info, self.settings, record["port"])
            record["engine"] = info.get("engine")
            self.on_event("phase", {"phase": "warm-up"})
            _warm_up(url, self.measure)
            for repeat in range(1, self.measure.repeats + 1):
                self.on_event("phase", {"phase": "judging", "repeat": repeat})
                result = self._judge(url, repeat)
                record["repeats"].append(_repeat_figures(result.summary["results"]))
            record.update(summarize_repeats(record["repeats"]))
        except Exception as error:  # any failure ends this trial, not the search
            died = self.server is not None and self.server.process is not None \
                and self.server.process.poll() is not None
            message = str(error) or type(error).__name__
            if not isinstance(error, LlmserveError | httpx.HTTPError | OSError):
                message = f"{type(error).__name__}: {message}"
            log_text = self.server.log_text() if self.server is not None else ""
            record["status"] = "failed"
            # The server log explains a server that died; a live server's log is not the cause.
            record["reason"] = (_failure_reason(message, log_text) if died
                                else message.splitlines()[0])
            record["log_tail"] = log_text.splitlines()[-LOG_TAIL_LINES:]
        finally:
            watchdog.cancel()
            with shielded():
                if self.server is not None:
                    self.server.stop()
        if self.timed_out.is_set():
            record["status"] = "timeout"
            record["reason"] = f"the trial took more than {self.limits.trial_timeout:.0f} s"
        record["seconds"] = round(time.monotonic() - began, 1)
        return record

    def _expire(self) -> None:
        self.timed_out.set()
        if self.server is not None:
            self.server.stop()  # the judge's next request fails, and run() records a timeout

    def _start(self, record: dict[str, Any]) -> str:
        def starting(server: ServerProcess) -> None:
            self.server = server  # from now on, the trial timeout can stop it
            self.on_event("phase", {"phase": "starting", "port": int(server.env["PORT"])})

        service = start_service(
            self.settings, log_path=self.dir / "server.log",
            base_env={**self.base_env, MARKER_VAR: self.marker},
            start_timeout=self.limits.start_timeout, on_start=starting)
        record["port"] = service.port
        self.on_event("phase", {"phase": "serving", "port": service.port,
                                "pid": service.server.pid})
        return service.url

    def _judge(self, url: str, repeat: int) -> Any:
        m = self.measure
        config = RunConfig(
            url=url, data=m.data, out=self.dir / f"judge-{repeat}", split=m.split, limit=m.limit,
            batch=m.mode == "batch", batch_size=m.batch_size, concurrency=m.concurrency,
            timeout=m.request_timeout, retries=2, wait=30.0, wait_loading=60.0, progress=False)
        return Runner(config, on_item=lambda item: self.on_event("item", item)).run()


def _repeat_figures(results: dict[str, Any]) -> dict[str, Any]:
    keep = ("items", "scores", "output_tokens", "engine_output_tokens", "wall_seconds",
            "engine_seconds", "tokens_per_s_engine", "tokens_per_s_wall")
    return {k: results.get(k) for k in keep}


def reap_orphans(marker: str) -> list[int]:
    """Kill servers that a killed tuner of this folder left running, and return their pids.

    Only processes whose environment carries this folder's marker are touched: servers this
    tool started for this folder. The caller holds the folder's lock, so no live tuner owns them.
    """
    wanted = b"\0" + f"{MARKER_VAR}={marker}".encode() + b"\0"
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            environ = b"\0" + (proc / "environ").read_bytes() + b"\0"
        except OSError:  # gone, or not ours to read
            continue
        if wanted in environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed
