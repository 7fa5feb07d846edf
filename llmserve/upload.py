"""`llmserve upload FOLDER REPO_ID`: put a model or adapter folder on ModelScope.

A thin call of modelscope's HubApi.upload_folder (resumable, with its own progress bar). The
token is MODELSCOPE_API_TOKEN (a SecretStr in the settings): read once here, handed to
modelscope, never printed or logged. Training checkpoints (checkpoint-*/) and hidden files are
left out, so `llmserve upload results/finetune/adapter ...` and a merged checkpoint both work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from llmserve.errors import ExitCode, LlmserveError

PROG = "llmserve upload"
IGNORE_PATTERNS = ["checkpoint-*/*", ".*", "*/.*"]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Upload a model folder (a merged checkpoint, or a LoRA adapter from "
        "`llmserve finetune`) to a ModelScope model repo. The token comes from "
        "MODELSCOPE_API_TOKEN and is never printed.",
    )
    parser.add_argument("folder", type=Path, help="folder to upload")
    parser.add_argument("repo_id", help="ModelScope repo, owner/name")
    parser.add_argument("--message", default=None, help="commit message")
    parser.add_argument("--revision", default=None, help="branch (default: the repo's)")
    return parser


def upload_plan(folder: Path, repo_id: str, message: str | None, revision: str | None) -> dict:
    """HubApi.upload_folder's arguments (without the token); bad input is a LlmserveError."""
    if not folder.is_dir():
        raise LlmserveError(f"folder {str(folder)!r} does not exist")
    owner, slash, name = repo_id.partition("/")
    if not slash or not owner or not name or "/" in name:
        raise LlmserveError(f"repo id {repo_id!r} is not owner/name")
    if not any(folder.glob("*.json")):
        raise LlmserveError(f"{str(folder)!r} has no config or adapter json: not a model folder")
    return {
        "repo_id": repo_id,
        "folder_path": str(folder),
        "repo_type": "model",
        "commit_message": message or f"upload {folder.name} with llmserve",
        "revision": revision,
        "ignore_patterns": IGNORE_PATTERNS,
    }


def upload(plan: dict[str, Any], token: str) -> Any:
    from modelscope.hub.api import HubApi

    return HubApi().upload_folder(**plan, token=token)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    from llmserve.settings import read_setting

    token = None
    try:
        plan = upload_plan(args.folder, args.repo_id, args.message, args.revision)
        token = read_setting("modelscope_api_token")
        if token is None:
            raise LlmserveError("MODELSCOPE_API_TOKEN is not set: uploading needs a token")
        upload(plan, token.get_secret_value())
    except LlmserveError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return int(error.exit_code)
    except Exception as error:  # the hub refused or was unreachable: one line, no token
        message = str(error).replace(token.get_secret_value(), "***") if token else str(error)
        print(f"{PROG}: error: upload to {args.repo_id} failed: {message}", file=sys.stderr)
        return int(ExitCode.FAILED)
    print(f"uploaded {args.folder} to https://modelscope.cn/models/{args.repo_id}")
    return int(ExitCode.OK)
