"""Tool virtual environments made on demand beside the repo: one builder for every tool whose
pins cannot share the serving venv (.venv-quant for llm-compressor, .venv-lmeval for
lm-evaluation-harness).

A `ToolVenv` names its folder, its pins and an import check. `ensure()` returns the venv's
python, building it first when needed: `python -m venv` with the serving venv's base
interpreter (same Python version), `pip install <pins>`, then the import check. Only after all
three succeed is a marker written holding the pins, so an interrupted build, or a change of
pins, builds again. An exclusive flock on a file inside the folder keeps two callers (two
terminals, two pytest workers) from building at once: the second waits, then finds the marker.
Every step's output goes to an install log in the folder; a failure is one `LlmserveError`
line naming the failing step, its last log line and the log's path (exit code 1).

torch, where a tool needs it, must be pinned to the serving venv's CPU build
(`TORCH_CPU`): pip then resolves it from the machine's local wheel folder; unpinned, pip pulls
a CUDA torch of several GB.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmserve.errors import ExitCode, LlmserveError

TORCH_CPU = "torch==2.13.0+cpu"  # the serving venv's torch (requirements-cpu.txt)
READY = "llmserve-ready.json"  # the marker: {"pins": [...]}, written after the import check
LOCK = "llmserve.lock"
LOG = "llmserve-install.log"


@dataclass(frozen=True)
class Step:
    """One build step: a name for the error message and the command it runs."""

    name: str
    argv: list[str]


@dataclass(frozen=True)
class ToolVenv:
    """A venv of its own for one tool: folder, pins, and the import that proves it works."""

    path: Path
    pins: tuple[str, ...]
    check: str  # python source run in the venv after the install, e.g. "import lm_eval"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def log(self) -> Path:
        return self.path / LOG

    def is_ready(self) -> bool:
        """Built completely, with exactly these pins."""
        marker = self.path / READY
        try:
            return bool(json.loads(marker.read_text()).get("pins") == list(self.pins))
        except (OSError, ValueError, AttributeError):
            return False

    def steps(self) -> list[Step]:
        # The serving venv's base interpreter makes the new venv (same Python version);
        # `venv` accepts the folder existing (it holds the lock and the log already).
        base = Path(sys.base_prefix) / "bin" / "python3"
        return [
            Step("create the venv", [str(base), "-m", "venv", str(self.path)]),
            Step("pip install", [str(self.python), "-m", "pip", "install",
                                 "--disable-pip-version-check", *self.pins]),
            Step("import check", [str(self.python), "-c", self.check]),
        ]

    def ensure(self, quiet: bool = False) -> Path:
        """The venv's python, after creating and installing it if needed (minutes)."""
        if self.is_ready():
            return self.python
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another caller may be installing: wait for it
            if self.is_ready():
                return self.python
            (self.path / READY).unlink(missing_ok=True)
            if not quiet:
                print(f"creating {self.path} with {' '.join(self.pins)} "
                      f"(minutes, once; log {self.log}) ...", file=sys.stderr, flush=True)
            run_steps(self.steps(), self.log, self.path)
            (self.path / READY).write_text(json.dumps({"pins": list(self.pins)}) + "\n")
        return self.python


def run_steps(steps: Sequence[Step], log: Path, what: Path) -> None:
    """Run each step with its output appended to `log`; the first failure is an LlmserveError."""
    with log.open("w") as out:
        for step in steps:
            out.write(f"$ {' '.join(step.argv)}\n")
            out.flush()
            try:
                code = subprocess.run(step.argv, stdout=out, stderr=subprocess.STDOUT).returncode
            except OSError as error:  # the interpreter itself is missing or not executable
                raise LlmserveError(
                    f"setting up {what} failed at step '{step.name}': {error} (log: {log})",
                    ExitCode.FAILED,
                ) from None
            if code != 0:
                out.flush()
                raise LlmserveError(
                    f"setting up {what} failed at step '{step.name}' (exit {code}): "
                    f"{last_error(log)} (full log: {log})",
                    ExitCode.FAILED,  # the tool's own arguments were fine: exit 1, not 2
                )


def last_error(log: Path) -> str:
    """The most telling line of a failed run's log: the last exception line, else the last."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or line.startswith("error:"):
            return line
    return lines[-1] if lines else "(empty log)"
