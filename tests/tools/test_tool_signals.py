"""Every tool that starts servers (bench, judge --start, tune, quantize compare) stops all of
them on SIGTERM or SIGINT, and exits 130: no process of theirs is left.

Each tool runs as `python -m llmserve <tool>` in a session of its own, with a marker variable
in its environment that every process it starts inherits (servers and their engine workers
included: the tools pass their environment on). The test waits, by bounded polls, until the
tool's server is up (bench, judge) or has spawned its engine; for a signal during a start it
then holds that server mid-start (SIGSTOP to its process group, after which its log shows it
was not ready), so the signal provably lands while the tool waits for the start. It sends
the signal and checks that the tool exits 130 and that every process it started is gone:
those collected as its descendants before the signal, and any process anywhere that carries
the marker (which catches one started after the last look).

Ctrl-C goes to the tool's process group, as a terminal sends it, to a tool started with
SIGINT ignored, as a non-interactive shell's background job (`cmd &`) inherits it: issue #28,
where such a tool ran a whole `quantize compare` through the signal and exited 0.

Cost: one engine start per test, all but two cut short; small --limit values.
The helpers here are shared with tests/tools/test_tool_resume.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from llmserve.paths import REPO_ROOT
from tests.conftest import TEST_ENV, write_chat_jsonl

MARKER_VAR = "LLMSERVE_TEST_TOOL_MARKER"
START_BOUND_S = 600.0  # an engine start on 2 busy cores: ~60-90 s; generous, it is a bound
EXIT_BOUND_S = 120.0  # SIGTERM to exit: the servers' own stop waits up to 30 s, then kills
GONE_BOUND_S = 60.0

QA = [("test", f"Name the number {n} in words.", f"{n}") for n in range(6)] + [
    ("tune", f"What is {n} plus {n}?", f"{2 * n}") for n in range(6)]


@dataclass
class Tool:
    """A tool run as a subprocess in its own session, and every process seen under it."""

    args: list[str]
    log: Path
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    process: subprocess.Popen[bytes] | None = None
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def start(self, env: dict[str, str] | None = None, sigint_ignored: bool = False) -> Tool:
        """`sigint_ignored`: the tool inherits SIGINT ignored, as from `cmd &` in a script."""
        full_env = {**os.environ, **TEST_ENV, **(env or {}), MARKER_VAR: self.marker}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llmserve", *self.args], cwd=REPO_ROOT, env=full_env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_ignore_sigint if sigint_ignored else None)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def descendants(self) -> list[psutil.Process]:
        """Its processes now (recorded in `seen`, so that a later look still knows them)."""
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for proc in found:
            self.seen.setdefault(proc.pid, proc)
        return found

    def servers(self) -> list[psutil.Process]:
        """Its `llmserve serve` processes."""
        return [p for p in self.descendants() if _is_serve(p)]

    def wait_for(self, what: str, condition: Callable[[], bool],
                 bound_s: float = START_BOUND_S) -> None:
        """Poll `condition` (and look at the processes) until true; fail if the tool ends."""
        assert self.process is not None
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            self.descendants()
            if condition():
                return
            try:
                code = self.process.wait(timeout=0.5)  # the poll interval, and an early exit
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"the tool exited ({code}) before {what}:\n{self.output()}")
        pytest.fail(f"not {what} after {bound_s:.0f} s:\n{self.output()}")

    def exit_code(self, bound_s: float = EXIT_BOUND_S) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=bound_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the tool did not exit within {bound_s:.0f} s:\n{self.output()}")

    def marked(self) -> list[psutil.Process]:
        """Every live process that carries this tool's marker, whoever its parent is now."""
        return marked_processes(self.marker)

    def leftovers(self) -> list[psutil.Process]:
        """What is still alive of everything the tool started, after a bounded wait."""
        candidates = {p.pid: p for p in [*self.seen.values(), *self.marked()]}
        _, alive = psutil.wait_procs(list(candidates.values()), timeout=GONE_BOUND_S)
        return alive

    def kill_everything(self) -> None:
        """Cleanup for a failed test: the tool's group, then each leftover's group."""
        for proc in [*self.seen.values(), *self.marked()]:
            try:
                os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _is_serve(proc: psutil.Process) -> bool:
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    return "llmserve" in cmdline and "serve" in cmdline


def marked_processes(marker: str) -> list[psutil.Process]:
    wanted = f"{MARKER_VAR}={marker}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if wanted in environ:
                found.append(psutil.Process(int(proc.name)))
        except (OSError, psutil.Error):
            continue
    return found


def serving(tool: Tool) -> bool:
    """One of the tool's servers answers GET / with 200."""
    for proc in tool.servers():
        try:
            cmdline = proc.cmdline()
            port = cmdline[cmdline.index("--port") + 1]
        except (psutil.Error, ValueError, IndexError):
            continue
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2.0).status_code == 200:
                return True
        except httpx.TransportError:
            continue
    return False


def engine_spawned(tool: Tool) -> bool:
    """One of the tool's servers has started a process of its own (vLLM's engine core)."""
    return any(_has_children(proc) for proc in tool.servers())


READY_LINE = "engine ready:"  # what llmserve.server.app logs as the server turns ready


def hold_mid_start(tool: Tool) -> int:
    """Wait until one of the tool's servers has started an engine, then stop that server's
    process group (SIGSTOP) and check from its log that it was not ready yet: the start cannot
    finish now, so the tool is still waiting for it. Returns the group, for `resume`."""
    tool.wait_for("its server started an engine", lambda: engine_spawned(tool))
    server = next(p for p in tool.servers() if _has_children(p))
    group = os.getpgid(server.pid)
    os.killpg(group, signal.SIGSTOP)
    log = Path(os.readlink(f"/proc/{server.pid}/fd/1"))  # ServerProcess: stdout is its log
    if READY_LINE in log.read_text(errors="replace"):
        os.killpg(group, signal.SIGCONT)
        pytest.fail(f"the server was ready before it could be held:\n{tool.output()}")
    return group


def resume(group: int) -> None:
    """Let a held server run again (to act on the SIGTERM its tool sends it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGCONT)


def _has_children(proc: psutil.Process) -> bool:
    try:
        return bool(proc.children())
    except psutil.Error:
        return False


def lines(path: Path) -> list[dict[str, object]]:
    """The whole records of a JSONL file (a last line still being written is not one)."""
    if not path.exists():
        return []
    *whole, _torn = path.read_text().split("\n")
    return [json.loads(line) for line in whole if line.strip()]


def stop_tool_and_check(tool: Tool, sig: signal.Signals, to_group: bool = False,
                        held: int | None = None) -> None:
    """Send `sig` (to the tool, or to its process group as a terminal's Ctrl-C does), then
    assert exit code 130 and nothing left of what it started. `held`: a server group held by
    `hold_mid_start`, resumed once the signal is sent."""
    before = tool.descendants()
    assert before, "the tool had no processes of its own to stop"
    if to_group:
        os.killpg(tool.pid, sig)
    else:
        os.kill(tool.pid, sig)
    if held is not None:
        resume(held)
    code = tool.exit_code()
    left = tool.leftovers()
    assert code == 130, tool.output()
    assert not left, [(p.pid, _safe_cmdline(p)) for p in left]


def _safe_cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[:200]
    except psutil.Error:
        return "?"


@pytest.fixture
def tools() -> Iterable[list[Tool]]:
    """The tools a test started: whatever a failed assertion left is killed afterwards."""
    started: list[Tool] = []
    yield started
    for tool in started:
        tool.kill_everything()


def tune_args(out: Path, data: Path, space: Path) -> list[str]:
    """A two-trial grid (the defaults, then MAX_NUM_SEQS=8) on the test settings, tiny."""
    sets = [f"--env={k}={v}" for k, v in TEST_ENV.items() if k not in ("HF_HUB_OFFLINE",
                                                                          "VLLM_NO_USAGE_STATS")]
    return ["tune", "--space", str(space), "--strategy", "grid", "--data", str(data),
            "--limit", "2", "--warmup", "0", "--no-confirm", "--no-progress",
            "--start-timeout", str(int(START_BOUND_S)), "--out", str(out), *sets]


def tune_space(path: Path) -> Path:
    path.write_text("parameters:\n  MAX_NUM_SEQS: [8]\nfixed: {}\n")
    return path


def compare_args(out: Path, data: Path, variants: list[Path]) -> list[str]:
    """quantize compare on the given directories, measured as little as it allows."""
    return ["quantize", "compare", "--no-original",
            *(arg for v in variants for arg in ("--variant", str(v))),
            "--data", str(data), "--judge-limit", "2", "--limit", "0", "--batch-size", "2",
            "--latency-runs", "1", "--throughput-runs", "1", "--speed-batch", "2",
            "--max-new-tokens", "16", "--env", "DTYPE=float32", "--env", "MAX_MODEL_LEN=1024",
            "--start-timeout", str(int(START_BOUND_S)), "--out", str(out)]


def served_model_dir() -> Path:
    from llmserve.model import resolve_model_dir
    from llmserve.settings import Settings

    return resolve_model_dir(Settings())


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.engine
def test_bench_sigterm_mid_measurement_stops_its_server(tmp_path: Path, tools: list[Tool]) -> None:
    """The issue's case: bench stopped with SIGTERM while its /predict server serves."""
    # Small lists, many repeats: the signal lands while it measures, and the server's drain of
    # the request in flight (SHUTDOWN_GRACE_SECONDS) is short.
    tool = Tool(["bench", "--systems", "predict-list", "--phases", "throughput", "-n", "4",
                 "--input-len", "32", "--output-len", "16", "--repeats", "200", "--warmup", "0",
                 "--eager", "--out", str(tmp_path / "bench")], tmp_path / "bench.out")
    tools.append(tool.start())
    began = time.monotonic()
    tool.wait_for("its /predict server answered", lambda: serving(tool))
    print(f"bench server up after {time.monotonic() - began:.1f} s", file=sys.stderr)
    signalled = time.monotonic()
    stop_tool_and_check(tool, signal.SIGTERM)
    print(f"bench exited, all gone, {time.monotonic() - signalled:.1f} s after SIGTERM",
          file=sys.stderr)


@pytest.mark.engine
def test_judge_start_sigterm_mid_run_stops_its_server(tmp_path: Path, tools: list[Tool]) -> None:
    data = write_chat_jsonl(tmp_path / "data.jsonl", QA)
    out = tmp_path / "judge"
    tool = Tool(["judge", "--start", "--data", str(data), "--split", "all", "--out", str(out),
                 "--no-progress"], tmp_path / "judge.out")
    tools.append(tool.start())
    tool.wait_for("a judged item", lambda: bool(lines(out / "details.jsonl")))
    stop_tool_and_check(tool, signal.SIGTERM)
    assert lines(out / "details.jsonl"), "what was judged is kept"


@pytest.mark.engine
def test_tune_sigterm_during_a_trial_start_stops_its_server(tmp_path: Path,
                                                              tools: list[Tool]) -> None:
    data = write_chat_jsonl(tmp_path / "data.jsonl", QA)
    out = tmp_path / "tune"
    tool = Tool(tune_args(out, data, tune_space(tmp_path / "space.yaml")), tmp_path / "tune.out")
    tools.append(tool.start())
    stop_tool_and_check(tool, signal.SIGTERM, held=hold_mid_start(tool))
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "interrupted"


def bench_args(out: Path) -> list[str]:
    return ["bench", "--systems", "predict-list", "--phases", "throughput", "-n", "2",
            "--input-len", "32", "--output-len", "8", "--repeats", "1", "--warmup", "0",
            "--eager", "--out", str(out)]


def judge_args(out: Path, data: Path) -> list[str]:
    return ["judge", "--start", "--data", str(data), "--split", "all", "--out", str(out),
            "--no-progress"]


@pytest.mark.engine
@pytest.mark.parametrize("name", ["bench", "judge", "tune", "compare"])
def test_ctrl_c_during_a_server_start_stops_the_tool(name: str, tmp_path: Path,
                                                     tools: list[Tool]) -> None:
    """SIGINT to the tool's process group, as a terminal's Ctrl-C sends it, while the tool
    waits for its server's start; the tool inherited SIGINT ignored (issue #28)."""
    data = write_chat_jsonl(tmp_path / "data.jsonl", QA)
    out = tmp_path / name
    args = {
        "bench": lambda: bench_args(out),
        "judge": lambda: judge_args(out, data),
        "tune": lambda: tune_args(out, data, tune_space(tmp_path / "space.yaml")),
        "compare": lambda: compare_args(out, data, [served_model_dir()]),
    }[name]()
    tool = Tool(args, tmp_path / f"{name}.out")
    tools.append(tool.start(sigint_ignored=True))
    stop_tool_and_check(tool, signal.SIGINT, to_group=True, held=hold_mid_start(tool))
    if name == "compare":
        assert not lines(out / "rows.jsonl"), "an interrupted candidate is not a row"
    if name == "tune":
        assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
