"""The budget hint (BUDGET_HINT): "Answer within N tokens." added to a prompt's user turn."""

from __future__ import annotations

from llmserve.engines.base import ChatMessage, Prompt, RawText, TokenIds
from llmserve.shaping.settings import ShapingSettings


def hint_text(max_tokens: int) -> str:
    return f"Answer within {max_tokens} tokens."


def add_hint(prompt: Prompt, max_tokens: int) -> Prompt:
    """`prompt` with the hint appended to its (last) user turn; a RawText prompt (no chat
    template, RAW_PROMPT) is left as it is: it has no user turn."""
    hint = hint_text(max_tokens)
    if isinstance(prompt, str):
        return f"{prompt}\n\n{hint}"
    if isinstance(prompt, RawText | TokenIds):
        return prompt
    messages: list[ChatMessage] = list(prompt)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "user":
            message = dict(messages[index])
            message["content"] = f"{message['content']}\n\n{hint}"
            messages[index] = message  # type: ignore[assignment]
            return messages
    return messages


def hinted(prompt: Prompt, max_tokens: int, shaping: ShapingSettings) -> Prompt:
    """`prompt` with the hint when BUDGET_HINT is on, else unchanged."""
    return add_hint(prompt, max_tokens) if shaping.budget_hint else prompt
