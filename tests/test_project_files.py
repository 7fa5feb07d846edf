"""The generated docs, env_force.sh and the Dockerfile agree with the settings class."""

import ast
import json
import os
import re
import subprocess
from pathlib import Path

from llmserve import envdoc
from llmserve.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {name.upper() for name in Settings.model_fields}
# Variables the image sets for vLLM and the HF libraries rather than for our settings.
THIRD_PARTY_ENV = {"HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS"}


def test_readme_table_lists_every_setting() -> None:
    assert envdoc.stale() == []
    table = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert listed == SETTINGS


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


def test_dockerfile_env_and_cmd() -> None:
    text = (ROOT / "Dockerfile").read_text()
    env = dockerfile_env(text)
    assert env, "the Dockerfile sets no ENV"
    assert set(env) <= SETTINGS | THIRD_PARTY_ENV, set(env) - SETTINGS - THIRD_PARTY_ENV
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, flags=re.MULTILINE).group(1))
    assert cmd[:2] == ["uvicorn", "serve:app"]
    assert cmd[cmd.index("--port") + 1] == "8000" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    module, attribute = cmd[1].split(":")
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert attribute in assigned
    # Files the image copies before `pip install` must exist.
    for name in re.findall(r"^COPY (.+) \./$", text, flags=re.MULTILINE)[0].split():
        assert (ROOT / name).exists(), name
