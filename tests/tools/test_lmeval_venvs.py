"""The on-demand tool venv builder (llmserve.harness.venvs) behind .venv-lmeval and .venv-quant.

The build steps are replaced by small python commands, so these run in milliseconds: what is
tested is the builder's contract (marker only after every step, the pins in it, a rebuild
when they change, one build for concurrent callers, one-line errors naming step and log).
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmserve.errors import ExitCode, LlmserveError
from llmserve.harness.venvs import LOG, READY, TORCH_CPU, Step, ToolVenv
from llmserve.paths import REPO_ROOT


@dataclass(frozen=True)
class ScriptedVenv(ToolVenv):
    """A ToolVenv whose steps append their name to `runs` (and the last one may fail)."""

    runs: Path = Path()
    fail_at: str | None = None

    def steps(self) -> list[Step]:
        steps = []
        for name in ("create the venv", "pip install", "import check"):
            code = (f"open({str(self.runs)!r}, 'a').write({name!r} + '\\n'); "
                    f"print('working on {name}')")
            if name == self.fail_at:
                code += "; raise ModuleNotFoundError(\"No module named 'lm_eval'\")"
            steps.append(Step(name, [sys.executable, "-c", code]))
        return steps


def scripted(tmp_path: Path, pins: tuple[str, ...] = ("a==1",),
             fail_at: str | None = None) -> ScriptedVenv:
    return ScriptedVenv(tmp_path / ".venv-tool", pins, "import sys", runs=tmp_path / "runs",
                        fail_at=fail_at)


def runs(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs"
    return path.read_text().splitlines() if path.exists() else []


def test_builds_once_and_marks_the_pins(tmp_path: Path) -> None:
    venv = scripted(tmp_path)
    assert not venv.is_ready()
    assert venv.ensure(quiet=True) == tmp_path / ".venv-tool" / "bin" / "python"
    assert runs(tmp_path) == ["create the venv", "pip install", "import check"]
    assert json.loads((venv.path / READY).read_text()) == {"pins": ["a==1"]}
    assert "working on import check" in (venv.path / LOG).read_text()
    venv.ensure(quiet=True)
    assert len(runs(tmp_path)) == 3  # ready: nothing ran again


def test_changed_pins_rebuild(tmp_path: Path) -> None:
    scripted(tmp_path).ensure(quiet=True)
    newer = scripted(tmp_path, pins=("a==2",))
    assert not newer.is_ready()
    newer.ensure(quiet=True)
    assert len(runs(tmp_path)) == 6
    assert json.loads((newer.path / READY).read_text()) == {"pins": ["a==2"]}


def test_a_failed_step_is_one_line_naming_step_and_log(tmp_path: Path) -> None:
    venv = scripted(tmp_path, fail_at="import check")
    with pytest.raises(LlmserveError) as caught:
        venv.ensure(quiet=True)
    message = str(caught.value)
    assert caught.value.exit_code is ExitCode.FAILED
    assert "\n" not in message
    assert "failed at step 'import check' (exit 1)" in message
    assert "ModuleNotFoundError: No module named 'lm_eval'" in message
    assert str(venv.path / LOG) in message
    assert not venv.is_ready() and not (venv.path / READY).exists()
    # Fixed, it builds from the start: an interrupted build never counts as ready.
    scripted(tmp_path).ensure(quiet=True)
    assert runs(tmp_path)[-3:] == ["create the venv", "pip install", "import check"]


def test_a_missing_interpreter_is_one_line(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Broken(ToolVenv):
        def steps(self) -> list[Step]:
            return [Step("create the venv", [str(tmp_path / "no-python"), "-m", "venv"])]

    with pytest.raises(LlmserveError, match=r"failed at step 'create the venv': .*no-python"):
        Broken(tmp_path / "v", ("x",), "pass").ensure(quiet=True)


def test_concurrent_callers_build_once(tmp_path: Path) -> None:
    venv = scripted(tmp_path)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            venv.ensure(quiet=True)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert runs(tmp_path) == ["create the venv", "pip install", "import check"]


def test_progress_line_names_the_pins_and_log(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    venv = scripted(tmp_path)
    venv.ensure()
    err = capsys.readouterr().err
    assert "creating" in err and "a==1" in err and str(venv.path / LOG) in err


def test_the_real_steps_pin_pip_and_check() -> None:
    venv = ToolVenv(Path("/x/.venv-t"), ("lm_eval[api]==0.4.13",), "import lm_eval")
    names = [step.name for step in venv.steps()]
    assert names == ["create the venv", "pip install", "import check"]
    install = venv.steps()[1].argv
    assert install[:4] == ["/x/.venv-t/bin/python", "-m", "pip", "install"]
    assert install[-1] == "lm_eval[api]==0.4.13"


def test_tool_venvs_keep_their_places_and_pins() -> None:
    from llmserve.lmeval import env as lmeval_env
    from llmserve.quantize import env as quant_env

    assert quant_env.QUANT_VENV == REPO_ROOT / ".venv-quant"
    assert quant_env.VENV.path == quant_env.QUANT_VENV and TORCH_CPU in quant_env.PINS
    assert lmeval_env.LMEVAL_VENV == REPO_ROOT / ".venv-lmeval"
    assert lmeval_env.PINS == ("lm_eval[api]==0.4.13",)
    # The pin is the serving venv's torch: pip then takes it from the local wheel folder.
    assert TORCH_CPU in (REPO_ROOT / "requirements-cpu.txt").read_text().splitlines()
