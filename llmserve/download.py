"""Fetch MODEL_ID from ModelScope into ./model/<MODEL_ID>, at build time only.

A local MODEL_DIR wins and nothing is fetched; a checkpoint already present is not fetched
again. The server itself never downloads (model.resolve_model_dir only looks on disk).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmserve.settings import Settings, load_settings

# Weights and tokenizer files vLLM needs; skips other formats repos often carry as well.
IGNORE_PATTERNS = ["*.pth", "*.pt", "*.bin.index.json.bak", "*.gguf", "original/*"]


def download_plan(settings: Settings) -> dict[str, Any] | None:
    """The snapshot_download arguments for these settings, or None when nothing is needed."""
    if settings.model_dir is not None or not settings.model_id:
        return None
    target = settings.models_root / settings.model_id
    if (target / "config.json").exists():
        return None
    return {
        "model_id": settings.model_id,
        "revision": settings.model_revision,
        "local_dir": str(target),
        "ignore_patterns": IGNORE_PATTERNS,
    }


def download(settings: Settings, fetch: Callable[..., str] | None = None) -> Path | None:
    """Run the plan; `fetch` defaults to modelscope.snapshot_download."""
    plan = download_plan(settings)
    if plan is None:
        return None
    if fetch is None:
        from modelscope import snapshot_download as fetch
    token = settings.modelscope_api_token  # a SecretStr: read here only, never in the plan
    if token is not None:
        return Path(fetch(**plan, token=token.get_secret_value()))
    return Path(fetch(**plan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmserve download",
        description="Download MODEL_ID (revision MODEL_REVISION) from ModelScope into "
        "MODELS_ROOT/<MODEL_ID>. Does nothing when MODEL_DIR is set, MODEL_ID is unset "
        "(the embedded model needs no download) or the checkpoint is already there.",
    )
    parser.parse_args(argv)
    settings = load_settings()
    path = download(settings)
    if path is None:
        print("nothing to download")
    else:
        print(f"downloaded {settings.model_id} to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
