"""The prompts every system gets: the same user texts, templated once into the same token ids.

/predict receives the user texts and templates them itself with the same PromptRenderer and
settings, so it sees exactly the token ids the other systems are given directly.

Every repeat and warm-up gets prompts of its own (a different seed, or a different slice of
the data): with prefix caching on, re-sending the same prompts would skip their prefill and
flatter the vLLM systems against transformers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from llmserve.engines.render import PromptRenderer
from llmserve.errors import LlmserveError

WORD_POOL_SIZE = 2000


@dataclass(frozen=True)
class Batch:
    prompts: list[str]  # what /predict receives
    texts: list[str]  # the same prompts templated: what vllm serve receives (--serve-input text)
    token_ids: list[list[int]]  # the templated prompts tokenized: what the others receive
    max_tokens: list[int]  # per prompt, as the service computes it
    special_tokens: bool  # whether tokenizing `texts` adds the tokenizer's special tokens

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def prompt_tokens(self) -> int:
        return sum(len(ids) for ids in self.token_ids)


class PromptMaker:
    """Builds batches for one tokenizer and one set of prompt settings."""

    def __init__(self, renderer: PromptRenderer, max_model_len: int, max_new_tokens: int) -> None:
        self.renderer = renderer
        self.max_model_len = max_model_len
        self.max_new_tokens = max_new_tokens
        self._words: list[str] | None = None

    def batch(self, prompts: list[str]) -> Batch:
        ids = self.renderer.token_ids(prompts)
        for index, prompt_ids in enumerate(ids):
            if len(prompt_ids) >= self.max_model_len:
                raise LlmserveError(
                    f"prompt {index} has {len(prompt_ids)} tokens after templating; "
                    f"MAX_MODEL_LEN is {self.max_model_len}"
                )
        # The service's own rule (Engine.generate): never past MAX_MODEL_LEN.
        limits = [min(self.max_new_tokens, self.max_model_len - len(p)) for p in ids]
        return Batch(prompts=list(prompts), texts=[self.renderer.text(p) for p in prompts],
                     token_ids=ids, max_tokens=limits, special_tokens=self.renderer.raw)

    def synthetic(self, count: int, input_len: int, seed: int | str) -> Batch:
        """`count` different prompts of exactly `input_len` tokens after templating."""
        rng = random.Random(seed)
        return self.batch([self._sized_prompt(rng, input_len) for _ in range(count)])

    def _word_pool(self) -> list[str]:
        """Words that are one token each with a leading space, so lengths add up exactly."""
        if self._words is None:
            tokenizer = self.renderer.tokenizer
            words: list[str] = []
            for token_id in range(len(tokenizer)):
                text = tokenizer.decode([token_id])
                word = text[1:]
                if (
                    text.startswith(" ")
                    and word.isascii()
                    and word.isalpha()
                    and word.islower()
                    and len(word) >= 3
                    and tokenizer.encode(text, add_special_tokens=False) == [token_id]
                ):
                    words.append(word)
                    if len(words) >= WORD_POOL_SIZE:
                        break
            if len(words) < 100:
                raise LlmserveError("the tokenizer has too few single-token words for "
                                 "synthetic prompts; use --source data")
            self._words = words
        return self._words

    def _sized_prompt(self, rng: random.Random, input_len: int) -> str:
        words = self._word_pool()
        overhead = self._length("")
        if input_len <= overhead:
            raise LlmserveError(
                f"--input-len {input_len} is not above the template's own {overhead} tokens"
            )
        chosen = [rng.choice(words) for _ in range(input_len - overhead)]
        # Words are single tokens, so this is exact at once; the loop guards tokenizers whose
        # first word or template join merges differently.
        for _ in range(8):
            length = self._length(" ".join(chosen))
            if length == input_len:
                return " ".join(chosen)
            if length > input_len:
                del chosen[input_len - length :]
            else:
                chosen.extend(rng.choice(words) for _ in range(input_len - length))
        raise LlmserveError(f"could not build a prompt of exactly {input_len} tokens")

    def _length(self, prompt: str) -> int:
        return len(self.renderer.token_ids([prompt])[0])


def data_questions(path: Path) -> list[str]:
    """The user questions of a judge-format data file (data.jsonl), in file order."""
    from llmserve.dataset import load_items

    return [item.question for item in load_items(path)]


def data_slice(questions: list[str], count: int, index: int) -> list[str]:
    """The index-th run's `count` questions: consecutive, wrapping around the data."""
    start = index * count
    return [questions[(start + i) % len(questions)] for i in range(count)]
