"""Run a top-level script (bench.py, eval_local.py, ...) under the project's virtual environment.

A user types `python3 bench.py --help` in a plain shell: that is the system python, which has
none of the project's packages. So each top-level script calls `run(subcommand, __file__)`,
which re-executes the script under `.venv/bin/python` (or `$VENV_DIR`'s, as
scripts/setup_env.sh makes it) when that is not the running interpreter, then runs
`llmserve <subcommand> <args>`. The script's own directory, the repository root, is on sys.path
(python puts it there), so this works from any working directory; default paths come from
llmserve.paths, and paths a user passes stay relative to their working directory.

When there is no venv (a Docker image installs into its system python; a user may run in an
environment of their own), the script runs under the python it was given. It never creates the
venv itself: that takes minutes, downloads gigabytes, picks GPU or CPU wheels and may apt-get
install tcmalloc, which a `--help` or a mistyped flag must not set off, and two scripts started
at once would race on one venv. A missing package instead gets one line that says to run
`bash run_model.sh`, the one documented set-up step, and exit code 2.

Standard library only: this runs before the re-exec.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from llmserve.errors import ExitCode
from llmserve.paths import REPO_ROOT

REEXEC_MARK = "LLMSERVE_BOOTSTRAP_REEXEC"  # set only across the one re-exec, then removed


def venv_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The project's venv: $VENV_DIR (relative to the repository root, as setup_env.sh) or .venv."""
    configured = Path(environ.get("VENV_DIR") or ".venv").expanduser()
    return configured if configured.is_absolute() else REPO_ROOT / configured


def running_in(venv: Path) -> bool:
    """Whether this interpreter is the venv's (sys.prefix is the venv's directory)."""
    return os.path.realpath(sys.prefix) == os.path.realpath(venv)


def ensure_venv(script: str) -> None:
    """Re-execute `script` with the same arguments under the venv's python, when there is one
    and it is not the running interpreter. Returns only when this process should go on."""
    reexecuted = os.environ.pop(REEXEC_MARK, None) is not None  # never inherited by children
    venv = venv_dir()
    python = venv / "bin" / "python"
    if reexecuted or running_in(venv) or not os.access(python, os.X_OK):
        return
    environ = {**os.environ, REEXEC_MARK: "1"}
    os.execve(python, [str(python), os.path.abspath(script), *sys.argv[1:]], environ)


def missing_package_hint(script: str, module: str) -> str:
    """One line for a package this python lacks: what to run so that it is there."""
    venv = venv_dir()
    name = Path(script).name
    if not (venv / "bin" / "python").exists():
        fix = (
            f"there is no project environment at {venv} yet: run `bash "
            f"{REPO_ROOT / 'run_model.sh'}` once (it creates it; first run: several "
            "minutes), then rerun this command"
        )
    elif running_in(venv):
        fix = (
            f"{venv} looks incomplete: rerun `bash {REPO_ROOT / 'run_model.sh'}` to finish "
            "its set-up"
        )
    else:
        fix = f"run it with {venv / 'bin' / 'python'}"
    return f"{name}: this python ({sys.executable}) has no module {module!r}; {fix}"


def run(subcommand: str, script: str) -> int:
    """`llmserve <subcommand> <this script's arguments>`, under the project's venv."""
    ensure_venv(script)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from llmserve.cli import main

    try:
        return main([subcommand, *sys.argv[1:]])
    except ModuleNotFoundError as error:
        if not error.name or error.name.partition(".")[0] == "llmserve":
            raise  # our own module missing is a bug, not a set-up problem
        print(missing_package_hint(script, error.name), file=sys.stderr)
        return int(ExitCode.USAGE)
