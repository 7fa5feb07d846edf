"""A small fake engine for fast tests of the HTTP layer: the Engine Protocol without vLLM.

It answers "echo: <prompt>" word by word, counts a word as a token, and can be told to load
slowly (until a gate opens), to fail at start, to take its time per call (or to wait for a
gate: a stream waits for it after its first word), or to die. It counts the prompts it holds
(`unfinished`, generate and stream alike) and the calls cancelled or closed early
(`cancelled`). Raw text (RawText) shows as "raw: <text>", so a test sees it was not templated;
token ids as "ids: 1 2 3". A character is a token for /tokenize. Asked for logprobs, word n
of an answer has logprob -n/10 (word_logprob), whole or streamed.
`FakeEngineFactory` is an EngineFactory that keeps the engines it built.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmserve.engines.base import (
    Delta,
    Generation,
    Prompt,
    PromptTooLong,
    RawText,
    Sampling,
    TokenIds,
    TokenLogprob,
    Tokens,
)
from llmserve.engines.render import check_ids
from llmserve.settings import Settings


def prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, RawText):
        return f"raw: {prompt.text}"
    if isinstance(prompt, TokenIds):
        return "ids: " + " ".join(map(str, prompt.ids))
    if isinstance(prompt, str):
        return prompt
    return " | ".join(f"{turn['role']}: {turn['content']}" for turn in prompt)


def word_logprob(n: int, word: str) -> TokenLogprob:
    """Word `n` (from 1) of an answer as a token (with its space after the first), its
    logprob -n/10, and one alternative."""
    token = word if n == 1 else f" {word}"
    return TokenLogprob(token, n, -n / 10, ((token, -n / 10), ("alt", -5.0)))


@dataclass
class Call:
    prompts: list[Prompt]
    sampling: Sampling


class FakeEngine:
    """Deterministic answers: the first `max_tokens` words of "echo: <prompt>"."""

    def __init__(
        self,
        settings: Settings,
        model_dir: Path,
        delay: float = 0.0,
        die_during_generate: bool = False,
        hold: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.model_dir = model_dir
        self.sampling = Sampling.from_settings(settings)
        self.delay = delay
        self.die_during_generate = die_during_generate
        self.calls: list[Call] = []
        self.killed = False
        self.shut = False
        self.hold = hold  # generate waits for it to be set (a call that runs until released)
        self.unfinished = 0  # prompts inside generate now
        self.cancelled = 0  # calls cancelled or streams closed early (a real engine aborts)
        self.started = asyncio.Event()  # set when a generate call holds its prompts

    @property
    def dead(self) -> bool:
        return self.killed

    def die(self) -> None:
        self.killed = True

    def _words(self, prompt: Prompt, sampling: Sampling) -> tuple[int, list[str]]:
        prompt_words = len(prompt_text(prompt).split())
        answer = f"echo: {prompt_text(prompt)}".split()
        limit = min(sampling.max_tokens, self.settings.max_model_len - prompt_words)
        return prompt_words, answer[:limit]

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        sampling = sampling or self.sampling
        self.calls.append(Call(list(prompts), sampling))
        if self.killed:
            raise RuntimeError("engine core is gone")  # what a real engine's client might say
        for index, prompt in enumerate(prompts):
            words = len(prompt_text(prompt).split())
            if words >= self.settings.max_model_len:
                raise PromptTooLong(index, words, self.settings.max_model_len)
        start = time.perf_counter()
        self.unfinished += len(prompts)
        self.started.set()
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.hold is not None:
                await self.hold.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.unfinished -= len(prompts)
        if self.die_during_generate:
            self.killed = True
            raise RuntimeError("engine core crashed mid-request")
        # Sampling.n choices per prompt, all alike (the same words).
        counted = [self._words(p, sampling) for p in prompts for _ in range(sampling.n)]
        logprobs = None
        if sampling.logprobs is not None:
            logprobs = [[word_logprob(n, w) for n, w in enumerate(words, 1)]
                        for _, words in counted]  # fmt: skip
        return Generation(
            texts=[" ".join(words) for _, words in counted],
            prompt_tokens=[n for n, _ in counted],
            completion_tokens=[len(words) for _, words in counted],
            finish_reasons=[
                "length" if len(words) == sampling.max_tokens else "stop" for _, words in counted
            ],
            engine_seconds=time.perf_counter() - start,
            ttft_seconds=0.001,
            logprobs=logprobs,  # type: ignore[arg-type]
            n=sampling.n,
        )

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        sampling = sampling or self.sampling
        self.calls.append(Call([prompt], sampling))
        if self.killed:
            raise RuntimeError("engine core is gone")
        prompt_words, words = self._words(prompt, sampling)
        if prompt_words >= self.settings.max_model_len:
            raise PromptTooLong(0, prompt_words, self.settings.max_model_len)
        self.unfinished += 1
        self.started.set()
        finished = False
        try:
            for n, word in enumerate(words, start=1):
                if n > 1 and self.hold is not None:
                    await self.hold.wait()  # a stream that stalls after its first word
                logprobs = None if sampling.logprobs is None else [word_logprob(n, word)]
                for index in range(sampling.n):  # n > 1: the choices' deltas interleave
                    yield Delta(
                        text=word if n == 1 else f" {word}",
                        output_tokens=n,
                        prompt_tokens=prompt_words,
                        index=index,
                        logprobs=logprobs,
                    )
            reason = "length" if len(words) == sampling.max_tokens else "stop"
            finished = True
            for index in range(sampling.n):
                yield Delta(text="", output_tokens=len(words), prompt_tokens=prompt_words,
                            finish_reason=reason, index=index)  # fmt: skip
        except (asyncio.CancelledError, GeneratorExit):
            if not finished:
                self.cancelled += 1
            raise
        finally:
            self.unfinished -= 1

    # A character is a token: its id is its code point.
    async def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> Tokens:
        text = prompt_text(prompt)
        return Tokens([ord(c) for c in text], list(text))

    async def detokenize(self, ids: Sequence[int]) -> str:
        """Its vocabulary is Unicode's code points; a surrogate's text is U+FFFD, as a real
        tokenizer's decode gives for bytes that are no character."""
        check_ids(ids, 0x110000, "tokens")
        return "".join("\ufffd" if 0xD800 <= i <= 0xDFFF else chr(i) for i in ids)

    async def tokenizer_info(self) -> dict[str, Any]:
        return {"tokenizer_class": "FakeTokenizer", "eos_token": "</s>"}

    def facts(self) -> dict[str, Any]:
        return {
            "engine": "fake",
            "model_dir": str(self.model_dir),
            "max_model_len": self.settings.max_model_len,
        }

    def shutdown(self) -> None:
        self.shut = True


@dataclass
class FakeEngineFactory:
    """Builds FakeEngines (keyword options passed on); waits for `gate` first if given, and
    raises `fail` instead of building when set."""

    options: dict[str, Any] = field(default_factory=dict)
    gate: threading.Event | None = None
    fail: Exception | None = None
    engines: list[FakeEngine] = field(default_factory=list)

    def __call__(self, settings: Settings, model_dir: Path) -> FakeEngine:
        if self.gate is not None and not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        if self.fail is not None:
            raise self.fail
        engine = FakeEngine(settings, model_dir, **self.options)
        self.engines.append(engine)
        return engine

    @property
    def engine(self) -> FakeEngine:
        return self.engines[-1]
