"""Prompt rendering: a user string or a chat conversation -> the text and token ids the model
reads, through the model's chat template (with SYSTEM_PROMPT) unless RAW_PROMPT; RawText
(what /v1/completions sends) always as it is; TokenIds as they are.

Engine-neutral (a Hugging Face tokenizer does the work), and shared with the benchmark so
that every system it measures reads exactly what /predict feeds the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llmserve.engines.base import ChatMessage, Prompt, PromptRejected, RawText, TokenIds, Tokens

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
        if isinstance(prompt, TokenIds):
            return str(self.tokenizer.decode(list(prompt.ids)))
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
        ids: list[list[int]] = [
            list(p.ids) if isinstance(p, TokenIds) else [] for p in prompts
        ]  # token ids are read as they are
        for raw in (False, True):
            indices = [
                i for i, p in enumerate(prompts)
                if self.is_raw(p) == raw and not isinstance(p, TokenIds)
            ]  # fmt: skip
            if indices:
                texts = [self.text(prompts[i]) for i in indices]
                encoded = self.tokenizer(texts, add_special_tokens=raw)
                for i, row in zip(indices, encoded["input_ids"], strict=True):
                    ids[i] = list(row)
        return ids

    # --- /tokenize, /detokenize, /tokenizer_info (the same tokenizer the prompts go through)

    def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> Tokens:
        """A prompt's ids and token strings: raw text with or without the tokenizer's special
        tokens, a conversation through the chat template as generation reads it."""
        if isinstance(prompt, RawText):
            ids = list(self.tokenizer(prompt.text, add_special_tokens=add_special_tokens)
                       ["input_ids"])  # fmt: skip
        else:
            ids = self.token_ids([prompt])[0]
        return Tokens(ids, [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)])

    def detokenize(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids)))

    def info(self) -> dict[str, Any]:
        """vLLM's /tokenizer_info: the tokenizer's class, special tokens, length limits and
        chat template (lm-eval's remote tokenizer needs `eos_token`)."""
        tokenizer = self.tokenizer
        special = {k: str(v) for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        return {
            "tokenizer_class": type(tokenizer).__name__,
            **special,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "vocab_size": len(tokenizer),
            "model_max_length": min(int(tokenizer.model_max_length), 2**31 - 1),
            "chat_template": getattr(tokenizer, "chat_template", None),
        }


class RendererTokenizer:
    """The Engine Protocol's tokenizer calls on an engine's PromptRenderer (`self.renderer`),
    in a thread (a long text takes milliseconds), ids checked against `self.vocab_size`."""

    renderer: PromptRenderer
    vocab_size: int

    async def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> Tokens:
        return await asyncio.to_thread(self.renderer.tokenize, prompt, add_special_tokens)

    async def detokenize(self, ids: Sequence[int]) -> str:
        check_ids(ids, self.vocab_size, "tokens")
        return await asyncio.to_thread(self.renderer.detokenize, ids)

    async def tokenizer_info(self) -> dict[str, Any]:
        return self.renderer.info()


def check_ids(ids: Sequence[int], vocab_size: int, where: str) -> None:
    """PromptRejected naming the first id outside 0..vocab_size-1."""
    bad = next((i for i in ids if not 0 <= i < vocab_size), None)
    if bad is not None:
        raise PromptRejected(
            f"{where} has token id {bad}, outside the vocabulary (0..{vocab_size - 1})",
            where.split("[")[0],
        )
