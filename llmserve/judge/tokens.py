"""Count output tokens with the served model's own tokenizer, as the grader does.

The grader re-tokenizes the response text; that can differ from the tokens the engine
generated (an EOS token is not in the text, a stop string is cut off, decode/encode need not
round-trip), so the engine's X-Output-Tokens is recorded beside it for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError
from llmserve.settings import read_setting

Counter = Callable[[str], int]


def find_tokenizer_dir(explicit: Path | None, info: dict[str, Any] | None) -> tuple[Path, str]:
    """The tokenizer directory and where it came from.

    Order: --tokenizer; the served checkpoint from /info (the truth, when this machine can
    see it); MODEL_DIR from the environment (a remote server's checkpoint copied here).
    """
    if explicit is not None:
        if not explicit.is_dir():
            raise LlmserveError(f"--tokenizer {str(explicit)!r} is not a directory")
        return explicit, "--tokenizer"
    served = ((info or {}).get("engine") or {}).get("model_dir")
    if served and Path(served).is_dir():
        return Path(served), "/info engine.model_dir"
    gguf = ((info or {}).get("engine") or {}).get("model_gguf")  # ENGINE=llamacpp
    if gguf and Path(gguf).is_file():
        return Path(gguf), "/info engine.model_gguf"
    env_dir = read_setting("model_dir")  # unchecked: it need not exist on this machine
    if env_dir and Path(env_dir).is_dir():
        return Path(env_dir), "MODEL_DIR"
    where = f"/info says {served!r}, not a directory here" if served else "/info has no model_dir"
    raise LlmserveError(
        f"cannot find the served model's tokenizer ({where}); pass --tokenizer DIR "
        "(a local checkpoint directory with the same tokenizer)"
    )


def load_counter(directory: Path) -> Counter:
    """A function counting the tokens of a text (no special tokens: the text is all output).
    `directory` is a checkpoint directory or a GGUF file."""
    from transformers import AutoTokenizer  # slow to import: only once a server is found

    try:
        if directory.is_file():  # a GGUF file carries its tokenizer (ENGINE=llamacpp)
            tokenizer = AutoTokenizer.from_pretrained(
                str(directory.parent), gguf_file=directory.name, local_files_only=True
            )
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as error:
        raise LlmserveError(f"cannot load a tokenizer from {directory}: {error}") from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count
