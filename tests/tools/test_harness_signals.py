"""The tools' common ending: one line and the error's exit code; SIGTERM unwinds like Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from llmserve.errors import ExitCode, LlmserveError, ServerError, exit_code_table
from llmserve.harness.signals import run_tool
from llmserve.paths import REPO_ROOT


def test_an_error_ends_the_tool_with_one_line_and_its_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def body() -> int:
        raise ServerError("GET http://x/ is 500")

    assert run_tool("judge", body) == ExitCode.SERVER == 4
    assert capsys.readouterr().err == "judge: error: GET http://x/ is 500\n"

    def usage() -> int:
        raise LlmserveError("--limit 0: must be positive")

    assert run_tool("bench", usage) == 2


def test_interrupt_prints_the_resume_hint(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise KeyboardInterrupt

    assert run_tool("tune", body, lambda: "rerun the same command to resume") == 130
    assert capsys.readouterr().err == "tune: interrupted; rerun the same command to resume\n"


def ignore_sigint() -> None:
    """In the child before exec: SIGINT ignored, as a non-interactive shell's `cmd &` leaves
    it (and as Python then keeps it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sig", "inherited"),
    [(signal.SIGTERM, None), (signal.SIGINT, None), (signal.SIGINT, ignore_sigint)],
    ids=["sigterm", "sigint", "sigint-inherited-ignored"],
)
def test_a_signal_runs_finally_blocks_and_exits_130(
    tmp_path: Path, sig: signal.Signals, inherited: Callable[[], None] | None
) -> None:
    """A tool stopped with SIGTERM or Ctrl-C cleans up (its `finally` stops its servers) and
    says so; also when it was started with SIGINT ignored (issue #28: such a tool ran to the
    end through a Ctrl-C and exited 0)."""
    done = tmp_path / "cleaned"
    code = f"""
import os, pathlib, signal, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from llmserve.harness.signals import run_tool
def body():
    try:
        print("ready", flush=True)
        signal.pause()
    finally:
        pathlib.Path({str(done)!r}).write_text("yes")
    return 0
raise SystemExit(run_tool("demo", body))
"""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=inherited)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    process.send_signal(sig)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{sig.name} did not stop the tool")
    assert process.returncode == 130
    assert err == "demo: interrupted\n"
    assert done.read_text() == "yes"


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = [int(code) for code in ExitCode]
    assert len(codes) == len(set(codes))
    table = exit_code_table()
    for code in ExitCode:
        assert f"| {int(code)} |" in table
