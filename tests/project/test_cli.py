"""The one command line: `llmserve --help` is instant, every subcommand reaches its tool, and the
top-level scripts work from a plain shell by re-executing under the project's venv. No engine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from llmserve import cli
from llmserve.cli import COMMANDS, Command, main
from llmserve.cli import serve as serve_command
from llmserve.errors import ExitCode, LlmserveError

ROOT = Path(__file__).resolve().parents[2]
NAMES = [command.name for command in COMMANDS]
SHIMS = {
    "bench.py": "bench",
    "eval_local.py": "judge",
    "quantize.py": "quantize",
    "auto_tune.py": "tune",
    "download_model.py": "download",
    "finetune.py": "finetune",
}
HEAVY = (
    "vllm",
    "torch",
    "fastapi",
    "uvicorn",
    "pydantic",
    "rich",
    "jieba",
    "transformers",
    "matplotlib",
    "httpx",
    "numpy",
)
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


def console_script() -> Path:
    script = Path(sys.executable).parent / "llmserve"
    if not script.exists():
        pytest.fail(f"{script} is missing: scripts/setup_env.sh installs it (bash run_tests.sh)")
    return script


def plain_env() -> dict[str, str]:
    """A new login shell's environment: no venv activated, system PATH only."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    if os.path.realpath(sys.prefix) != os.path.realpath(ROOT / ".venv"):
        env["VENV_DIR"] = sys.prefix  # the suite runs in another venv: that one is the project's
    return env


def test_required_subcommands_are_there() -> None:
    assert {"serve", "judge", "bench", "quantize", "tune", "model", "download", "env"} <= set(NAMES)


def test_help_lists_every_command_and_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from llmserve.cli import main\n"
        "code = main(['--help'])\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert f"\n  {name} " in result.stdout, name


def test_console_script_help_lists_every_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(console_script()), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert f"\n  {name} " in result.stdout, name


@pytest.mark.parametrize("name", NAMES)
def test_console_script_subcommand_help(name: str, tmp_path: Path) -> None:
    """`llmserve <command> --help` is the tool's own help: the rest of argv reaches its main."""
    result = subprocess.run(
        [str(console_script()), name, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:300]


def test_unknown_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(console_script()), "frobnicate", "--x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "frobnicate" in lines[0] and all(name in lines[0] for name in NAMES)


def test_python_dash_m_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    """`python -m llmserve` used to serve; now it must name a command (and fails loudly)."""
    result = subprocess.run(
        [sys.executable, "-m", "llmserve"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "usage: llmserve <command>" in result.stderr


def test_help_command_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["help", "serve"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: llmserve serve")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("llmserve ")


@pytest.fixture
def fake_tool(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A command `fake` whose main records its argv and does what the test sets."""
    seen: dict[str, Any] = {"argv": None, "raise": None, "code": 7}

    def fake_main(argv: list[str]) -> int:
        seen["argv"] = argv
        if seen["raise"] is not None:
            raise seen["raise"]
        return seen["code"]

    module = types.ModuleType("fake_llmserve_tool")
    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_llmserve_tool", module)
    monkeypatch.setitem(cli.BY_NAME, "fake", Command("fake", "a test", "fake_llmserve_tool:main"))
    return seen


def test_the_rest_of_argv_reaches_the_tool(fake_tool: dict[str, Any]) -> None:
    assert main(["fake", "--help", "-x", "serve"]) == 7
    assert fake_tool["argv"] == ["--help", "-x", "serve"]


def test_llmserve_error_is_one_line_with_its_exit_code(
    fake_tool: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_tool["raise"] = LlmserveError("no such thing", exit_code=ExitCode.SERVER)
    assert main(["fake"]) == 4
    assert capsys.readouterr().err == "llmserve fake: error: no such thing\n"
    fake_tool["raise"] = KeyboardInterrupt()
    assert main(["fake"]) == 130


def test_sigterm_to_any_command_is_130(
    fake_tool: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command but serve (which drains, exit 0) maps SIGTERM to 130, its own `finally`
    blocks run first; the handler is put back afterwards."""
    before = signal.getsignal(signal.SIGTERM)
    fake_tool["raise"] = None
    fake_tool["code"] = 0
    sent: list[bool] = []

    def terminated(argv: list[str]) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered before kill() returns
            return 0
        finally:
            sent.append(True)

    sys.modules["fake_llmserve_tool"].main = terminated  # type: ignore[attr-defined]
    assert main(["fake"]) == 130
    assert sent == [True]
    assert "llmserve fake: interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before
    assert not cli.BY_NAME["serve"].interruptible


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no python3 in /usr/bin:/bin")
@pytest.mark.parametrize("shim", sorted(SHIMS))
def test_top_level_script_help_from_a_plain_shell(shim: str, tmp_path: Path) -> None:
    """`python3 bench.py --help` in a new shell, elsewhere: the system python, re-executed."""
    result = subprocess.run(
        [SYSTEM_PYTHON, str(ROOT / shim), "--help"],
        cwd=tmp_path,
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:300]


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no python3 in /usr/bin:/bin")
def test_bootstrap_reexecutes_under_the_venv(tmp_path: Path) -> None:
    """The proof that the scripts run under the venv: a script doing what they do reports the
    interpreter it ends up in, and the arguments survive the re-exec."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from llmserve.cli.bootstrap import ensure_venv\n"
        "if __name__ == '__main__':\n"
        "    ensure_venv(__file__)\n"
        "    print(sys.prefix)\n"
        "    print(sys.argv[1:])\n"
    )
    result = subprocess.run(
        [SYSTEM_PYTHON, str(probe), "a b", "--c"],
        cwd=tmp_path,
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    prefix, argv = result.stdout.splitlines()
    assert os.path.realpath(prefix) == os.path.realpath(sys.prefix)
    assert argv == "['a b', '--c']"


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no python3 in /usr/bin:/bin")
def test_missing_venv_is_one_clear_line(tmp_path: Path) -> None:
    """No venv and a python without the packages: one line saying to run run_model.sh, exit 2."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import rich"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python has the project's packages")
    env = {**plain_env(), "VENV_DIR": str(tmp_path / "absent")}
    result = subprocess.run(
        [SYSTEM_PYTHON, str(ROOT / "bench.py"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "run_model.sh" in lines[0] and "bench.py" in lines[0]


class Exec(Exception):
    """os.execve, caught: the test sees what would have run."""


@pytest.fixture
def serve_fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`llmserve serve` with its engine, app and uvicorn faked: what it execs and serves."""
    seen: dict[str, Any] = {"wanted": {"LLMSERVE_TEST_PRELOAD": "libfake.so"}, "served": None}

    def launch_env(settings: Any, environ: Any = None) -> dict[str, str]:
        environ = os.environ if environ is None else environ
        return {k: v for k, v in seen["wanted"].items() if k not in environ}

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        raise Exec(path, argv, env)

    def serve(settings: Any) -> int:  # uvicorn with the app (serve_command.serve)
        seen["served"] = (("app", settings), settings.host, settings.port)
        return 0

    import llmserve.engines

    monkeypatch.setattr(llmserve.engines, "launch_env", launch_env)
    monkeypatch.setattr(serve_command, "serve", serve)
    monkeypatch.setattr(os, "execve", execve)
    for name in ("HOST", "PORT", "LLMSERVE_TEST_PRELOAD", serve_command.REEXEC_MARK):
        monkeypatch.delenv(name, raising=False)
    return seen


def test_serve_reexecutes_once_with_the_launch_env(
    serve_fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Exec) as exec_info:
        serve_command.main(["--port", "8123"])
    path, argv, env = exec_info.value.args
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "llmserve", "serve", "--port", "8123"]
    assert env["LLMSERVE_TEST_PRELOAD"] == "libfake.so"
    assert env[serve_command.REEXEC_MARK] == "1"
    assert serve_fakes["served"] is None

    # The re-executed process: the variables are set, so it serves, and the marker is gone.
    monkeypatch.setenv("LLMSERVE_TEST_PRELOAD", "libfake.so")
    monkeypatch.setenv(serve_command.REEXEC_MARK, "1")
    assert serve_command.main(["--port", "8123"]) == 0
    (_, settings), host, port = serve_fakes["served"]
    assert (host, port) == ("0.0.0.0", 8123) and settings.port == 8123
    assert serve_command.REEXEC_MARK not in os.environ


def test_serve_never_overrides_the_user_and_never_loops(
    serve_fakes: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LLMSERVE_TEST_PRELOAD", "mine.so")  # set by the user: no re-exec
    monkeypatch.setenv("HOST", "127.0.0.1")
    assert serve_command.main([]) == 0
    assert serve_fakes["served"][1:] == ("127.0.0.1", 8000)

    # A launch_env that keeps asking after the one re-exec is served without, and said so.
    import llmserve.engines

    monkeypatch.setattr(
        llmserve.engines, "launch_env", lambda settings, environ=None: {"X_STILL": "1"}
    )
    monkeypatch.setenv(serve_command.REEXEC_MARK, "1")
    assert serve_command.main(["--host", "::1"]) == 0
    assert serve_fakes["served"][1:] == ("::1", 8000)
    assert "X_STILL" in capsys.readouterr().err


def test_serve_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve_command.main(["--port", "70000"])
    assert exit_info.value.code == 2
    assert "must be 1-65535" in capsys.readouterr().err


@pytest.mark.parametrize("command", [command.name for command in COMMANDS])
def test_every_command_help_names_llmserve(command: str) -> None:
    """`llmserve CMD --help` starts `usage: llmserve CMD` (not a script's or module's name)."""
    result = subprocess.run([sys.executable, "-m", "llmserve", command, "--help"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: llmserve {command}"), result.stdout[:200]


@pytest.mark.parametrize("command", [["bench"], ["tune"], ["load"], ["quantize", "compare"]])
def test_every_tool_that_starts_a_server_takes_env_one_way(command: list[str]) -> None:
    """One `--env KEY=VALUE` (repeatable, key upper-cased) for what a tool starts; no `--set`."""
    from llmserve.bench.cli import build_parser as bench
    from llmserve.load import build_parser as load
    from llmserve.quantize.cli import build_parser as quantize
    from llmserve.tune.cli import build_parser as tune

    parser = {"bench": bench, "tune": tune, "load": load, "quantize": quantize}[command[0]]()
    rest = command[1:]
    args = parser.parse_args([*rest, "--env", "max_num_seqs=8", "--env", "DTYPE="])
    assert args.env == [("MAX_NUM_SEQS", "8"), ("DTYPE", "")]
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([*rest, "--env", "ENFORCE_EAGER"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        parser.parse_args([*rest, "--set", "DTYPE=float32"])
