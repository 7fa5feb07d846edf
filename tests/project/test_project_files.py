"""The generated docs, env_force.sh and the Dockerfile agree with the settings class; the
shipped data, the top-level shims and the console script are in place."""

import ast
import fnmatch
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from llmserve import cli, envdoc
from llmserve.paths import GSM8K_TEST
from llmserve.settings import Settings
from tests.project.test_cli import SHIMS

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {name.upper() for name in Settings.model_fields}
# Variables the image sets for vLLM and the HF libraries rather than for our settings.
THIRD_PARTY_ENV = {"HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS"}


def test_settings_doc_lists_every_setting() -> None:
    assert envdoc.stale() == []
    table = (ROOT / "docs" / "settings.md").read_text()
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert listed == SETTINGS


def test_exit_codes_doc_has_the_generated_table() -> None:
    text = (ROOT / "docs" / "exit-codes.md").read_text()
    assert envdoc.EXIT_START in text and envdoc.EXIT_END in text


def test_env_force_sourced_sets_every_default() -> None:
    script = "source env_force.sh && env -0"
    env = {**os.environ, "MAX_MODEL_LEN": "7", "MODEL_DIR": "/somewhere", "TEMPERATURE": "0.9"}
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    after = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    for name, default in envdoc.defaults().items():
        if default is None:
            assert name not in after, name
        else:
            assert after[name] == default, name
    # What env_force exports must itself be valid settings.
    Settings(**{k.lower(): v for k, v in after.items() if k in SETTINGS})


def test_env_force_executed_refuses() -> None:
    result = subprocess.run(["bash", "env_force.sh"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "must be sourced" in result.stderr


def dockerfile_env(text: str) -> dict[str, str]:
    joined = text.replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", line))
    return env


def docker_cmd() -> list[str]:
    """The Dockerfile's CMD (exec form)."""
    text = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert found, "the Dockerfile has no CMD in exec form"
    return list(json.loads(found.group(1)))


def test_dockerfile_env_and_cmd() -> None:
    text = (ROOT / "Dockerfile").read_text()
    env = dockerfile_env(text)
    assert env, "the Dockerfile sets no ENV"
    assert set(env) <= SETTINGS | THIRD_PARTY_ENV, set(env) - SETTINGS - THIRD_PARTY_ENV
    cmd = docker_cmd()
    assert cmd == ["llmserve", "serve"]  # run as it is by tests/http/test_docker_cmd.py
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == "8000"
    # Files the image copies before `pip install` must exist.
    for name in re.findall(r"^COPY (.+) \./$", text, flags=re.MULTILINE)[0].split():
        assert (ROOT / name).exists(), name


def dockerignored(path: str) -> bool:
    """Whether a .dockerignore pattern excludes `path` or one of its parent folders."""
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in patterns)


def test_gsm8k_ships_with_its_licence() -> None:
    """The product's run-time data is in the repository (and the image), with its licence."""
    assert GSM8K_TEST == ROOT / "data" / "gsm8k" / "test.jsonl"
    lines = GSM8K_TEST.read_text().splitlines()
    assert len(lines) == 1319
    first = json.loads(lines[0])
    assert set(first) == {"question", "answer"} and "####" in first["answer"]
    licence = (GSM8K_TEST.parent / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "OpenAI" in licence
    readme = (ROOT / "data" / "README.md").read_text()
    assert "3101c7d5072418e28b9008a6636bde82a006892c" in readme and "MIT" in readme
    for path in ("data/gsm8k/test.jsonl", "data/gsm8k/LICENSE", "data.jsonl"):
        assert not dockerignored(path), path




@pytest.mark.parametrize("name", sorted(SHIMS))
def test_top_level_scripts_are_thin_shims(name: str) -> None:
    """Each is a docstring, the bootstrap import and a guarded run(<its subcommand>)."""
    tree = ast.parse((ROOT / name).read_text())
    docstring, imports, guard = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert isinstance(imports, ast.ImportFrom) and imports.module == "llmserve.cli.bootstrap"
    assert isinstance(guard, ast.If) and "__main__" in ast.unparse(guard.test)
    assert ast.unparse(guard.body[0]) == f"raise SystemExit(run({SHIMS[name]!r}, __file__))"
    assert SHIMS[name] in cli.BY_NAME


def test_shell_scripts_run_through_the_cli() -> None:
    run_model = (ROOT / "run_model.sh").read_text()
    assert 'exec "$PY" -m llmserve serve "$@"' in run_model
    assert "cpu_env" not in run_model  # `llmserve serve` applies the engine's launch env itself
    assert 'exec "$PYTHON" -m llmserve judge ' in (ROOT / "judge.sh").read_text()
    assert 'exec "$PYTHON" -m llmserve tune "$@"' in (ROOT / "auto_tune.sh").read_text()


def test_pyproject_installs_the_console_script() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"llmserve": "llmserve.cli:main"}
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert "-e ." in (ROOT / "scripts" / "setup_env.sh").read_text()
    assert "*.egg-info/" in (ROOT / ".gitignore").read_text().splitlines()
