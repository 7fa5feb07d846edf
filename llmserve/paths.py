"""Where the project's own files are: every default path resolves from the repository root,
so the tools work from any working directory. Paths a user passes stay relative to theirs."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_JSONL = REPO_ROOT / "data.jsonl"  # the judge's Q&A data: tune and test splits
GSM8K_TEST = REPO_ROOT / "data" / "gsm8k" / "test.jsonl"  # GSM8K test split, MIT (its LICENSE)
TUNE_SPACE = REPO_ROOT / "tune_space.yaml"
RESULTS_ROOT = REPO_ROOT / "results"
RUN_MODEL_SH = REPO_ROOT / "run_model.sh"
