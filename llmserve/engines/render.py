"""Prompt rendering: a user string or a chat conversation -> the text and token ids the model
reads, through the model's chat template (with SYSTEM_PROMPT) unless RAW_PROMPT; RawText
(what /v1/completions sends) always as it is.

Engine-neutral (a Hugging Face tokenizer does the work), and shared with the benchmark so
that every system it measures reads exactly what /predict feeds the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmserve.engines.base import ChatMessage, Prompt, RawText

RAW_SEPARATOR = "\n\n"  # between the turns of a conversation sent without a template


class PromptRenderer:
    """Turns prompts into token ids: chat template (with SYSTEM_PROMPT) unless RAW_PROMPT.

    A string is one user turn. A list of messages is a conversation; SYSTEM_PROMPT goes first
    only when it has no system message of its own. Without a template (RAW_PROMPT=1, or a
    tokenizer that has none) a string is sent as it is and a conversation as its contents
    joined by blank lines; SYSTEM_PROMPT is not used then. RawText is never templated.
    """

    def __init__(self, tokenizer: Any, system_prompt: str | None, raw: bool) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.raw = raw or not getattr(tokenizer, "chat_template", None)

    def messages(self, prompt: str | list[ChatMessage]) -> list[ChatMessage]:
        """The conversation the template gets: the prompt's turns, SYSTEM_PROMPT first if set
        and the prompt has no system message."""
        turns: list[ChatMessage] = (
            [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        )
        if self.system_prompt and not any(turn["role"] == "system" for turn in turns):
            turns.insert(0, {"role": "system", "content": self.system_prompt})
        return turns

    def is_raw(self, prompt: Prompt) -> bool:
        """Whether `prompt` reaches the model without the chat template."""
        return self.raw or isinstance(prompt, RawText)

    def text(self, prompt: Prompt) -> str:
        if isinstance(prompt, RawText):
            return prompt.text
        if self.raw:
            if isinstance(prompt, str):
                return prompt
            return RAW_SEPARATOR.join(turn["content"] for turn in prompt)
        return str(
            self.tokenizer.apply_chat_template(
                self.messages(prompt), tokenize=False, add_generation_prompt=True
            )
        )

    def token_ids(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids per prompt, in order. The template already holds the special tokens; a raw
        prompt gets the tokenizer's own. Templated and raw prompts are tokenized in one batch
        each (a batch call is what keeps a long list fast)."""
        ids: list[list[int]] = [[] for _ in prompts]
        for raw in (False, True):
            indices = [i for i, p in enumerate(prompts) if self.is_raw(p) == raw]
            if indices:
                texts = [self.text(prompts[i]) for i in indices]
                encoded = self.tokenizer(texts, add_special_tokens=raw)
                for i, row in zip(indices, encoded["input_ids"], strict=True):
                    ids[i] = list(row)
        return ids
