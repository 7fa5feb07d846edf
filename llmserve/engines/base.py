"""The engine seam: what the HTTP layer needs from an inference engine, and nothing more.

An engine generates a batch of prompts with per-request sampling, streams one request's text,
reports facts for /info, how many requests it holds and whether it died, and shuts down. vLLM
is one implementation (llmserve.engines.vllm); tests use a small fake (tests/fake_engine.py).
Nothing here imports an engine library, so the app and its tests load in a blink.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:
    from llmserve.engines.structured import StructuredSpec
    from llmserve.settings import Settings

Role = Literal["system", "user", "assistant"]


class ChatMessage(TypedDict):
    """One chat turn, as chat templates (and the OpenAI API) spell it."""

    role: Role
    content: str


@dataclass(frozen=True)
class RawText:
    """Text the model reads exactly as given: no chat template, no SYSTEM_PROMPT (the
    tokenizer adds its own special tokens, e.g. BOS). What /v1/completions sends: clients
    such as lm-eval's local-completions build few-shot prompts themselves."""

    text: str


@dataclass(frozen=True)
class TokenIds:
    """A prompt already tokenized (/v1/completions' list of ints, as lm-eval sends): the
    model reads these ids as they are, with no special token added."""

    ids: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))  # a list is accepted, kept frozen


# A plain user string (rendered as one user turn), a conversation, raw text or token ids.
Prompt = str | list[ChatMessage] | RawText | TokenIds


class EngineError(RuntimeError):
    """An engine could not serve a request."""


class PromptTooLong(EngineError, ValueError):
    """A prompt leaves no room for output within MAX_MODEL_LEN (the HTTP layer's 413)."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"prompt[{index}] has {tokens} tokens after templating; "
            f"the limit is {limit - 1} (MAX_MODEL_LEN={limit})"
        )
        self.index, self.tokens, self.limit = index, tokens, limit


class PromptRejected(EngineError, ValueError):
    """A prompt the model cannot read (a token id outside its vocabulary): the HTTP layer's
    400, naming `param`."""

    def __init__(self, message: str, param: str = "prompt") -> None:
        super().__init__(message)
        self.param = param


class StructuredRefused(EngineError, ValueError):
    """The engine's structured-output backend cannot compile a request's constraint
    (engines/structured.py): the HTTP layer's 400, naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class EngineDead(EngineError):
    """The engine died; it serves nothing more (the HTTP layer's 503). The message is the
    failure that revealed it."""


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters of one request. Defaults come from the settings
    (`Sampling.from_settings`); a request overrides some with `.replace(...)`."""

    max_tokens: int = 128  # at most; an engine lowers it to what MAX_MODEL_LEN leaves
    temperature: float = 0.0  # 0 is greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables it
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    seed: int | None = None
    adapter: str | None = None  # a LoRA adapter's name (LORA_MODULES); None: the base
    # Log-probabilities: None asks for none; K >= 0 gives each generated (`logprobs`) or
    # prompt (`prompt_logprobs`, what echo scores) token's own and its K most likely
    # alternatives'. max_tokens may be 0 only with prompt_logprobs (score the prompt only).
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    structured: StructuredSpec | None = None  # a JSON schema, regex, ... (engines/structured)
    # Choices per prompt (OpenAI's `n`): each prompt is sampled n times, independently.
    n: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))  # a list is accepted, kept frozen
        if isinstance(self.structured, dict):  # as the process wire carries it
            from llmserve.engines.structured import StructuredSpec

            object.__setattr__(self, "structured", StructuredSpec(**self.structured))
        problems = [
            name
            for name, ok in (
                ("n", self.n >= 1),
                ("max_tokens", self.max_tokens > 0
                 or (self.max_tokens == 0 and self.prompt_logprobs is not None)),
                ("logprobs", self.logprobs is None or self.logprobs >= 0),
                ("prompt_logprobs", self.prompt_logprobs is None or self.prompt_logprobs >= 0),
                ("temperature", self.temperature >= 0),
                ("top_p", 0 < self.top_p <= 1),
                ("top_k", self.top_k >= 0),
                ("repetition_penalty", self.repetition_penalty > 0),
                ("frequency_penalty", -2 <= self.frequency_penalty <= 2),
                ("presence_penalty", -2 <= self.presence_penalty <= 2),
            )
            if not ok
        ]
        if problems:
            name = problems[0]
            raise ValueError(f"sampling {name}={getattr(self, name)!r} is out of range")

    @classmethod
    def from_settings(cls, settings: Settings) -> Sampling:
        """The service's defaults: MAX_NEW_TOKENS, TEMPERATURE, ..., STOP_STRINGS, SEED."""
        return cls(
            max_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            repetition_penalty=settings.repetition_penalty,
            frequency_penalty=settings.frequency_penalty,
            presence_penalty=settings.presence_penalty,
            stop=tuple(settings.stop_strings),
            ignore_eos=settings.ignore_eos,
            seed=settings.seed,
            adapter=settings.lora_default,
        )

    def replace(self, **overrides: Any) -> Sampling:
        """A copy with some fields changed (checked like the original)."""
        return dataclasses.replace(self, **overrides)

    def choice(self, index: int) -> Sampling:
        """The sampling of choice `index` of n, for an engine that draws the n choices one
        request at a time (llama.cpp): n=1 and, when a seed is given, seed + index, so the
        choices differ from each other (n requests with one seed would draw the same answer
        n times) while the whole request stays repeatable. vLLM's parallel sampling seeds its
        child requests the same way (vllm/v1/engine/parallel_sampling.py), so a seeded
        request's choice i is drawn with the same seed on both engines."""
        seed = None if self.seed is None else self.seed + index
        return self.replace(n=1, seed=seed)


@dataclass(frozen=True)
class TokenLogprob:
    """One token of a prompt or an answer: its text, id and log-probability (None for a
    prompt's first token, which nothing predicts), and the most likely tokens at its
    position as (text, logprob) pairs, best first (the token itself among them)."""

    token: str
    token_id: int
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "top", tuple((str(t), float(v)) for t, v in self.top))


# The tokens of one prompt or one answer with their logprobs (when Sampling asked for them).
TokenLogprobs = list[TokenLogprob]


@dataclass(frozen=True)
class Choice:
    """One answer of a Generation: choice `index` of the batch is answer `index % n` to
    prompt `index // n` (`prompt_index`), as OpenAI and vLLM number a completions request's
    choices. Prompt fields are the prompt's (shared by its n choices)."""

    index: int
    prompt_index: int
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    logprobs: TokenLogprobs | None = None
    prompt_logprobs: TokenLogprobs | None = None


@dataclass(frozen=True)
class Generation:
    """The answers to one batch and engine-side timings. Every list has one entry per
    choice, prompt by prompt: Sampling.n choices per prompt (entry k answers prompt k // n),
    so with n=1, one per prompt, in the order of the prompts. `logprobs` / `prompt_logprobs`:
    the answer's / its prompt's tokens with their logprobs, where Sampling asked for them
    (else None)."""

    texts: list[str]
    prompt_tokens: list[int]  # per choice: its prompt's, after templating
    completion_tokens: list[int]  # per choice: tokens generated
    finish_reasons: list[str | None]  # per choice: "stop", "length", ... as the engine says
    engine_seconds: float  # from the first prompt entering the engine to the last answer
    ttft_seconds: float | None  # first token of the first prompt to get one, engine-side
    logprobs: list[TokenLogprobs | None] | None = None
    prompt_logprobs: list[TokenLogprobs | None] | None = None
    n: int = 1  # choices per prompt (Sampling.n)

    @property
    def output_tokens(self) -> int:
        """Tokens generated for the whole batch (the X-Output-Tokens header)."""
        return sum(self.completion_tokens)

    @property
    def input_tokens(self) -> int:
        """Prompt tokens of the whole batch, each prompt counted once (not once per choice:
        OpenAI's and vLLM's usage)."""
        return sum(self.prompt_tokens[:: self.n])

    @property
    def choices(self) -> list[Choice]:
        """The answers one by one."""
        logprobs = self.logprobs or [None] * len(self.texts)
        prompt_logprobs = self.prompt_logprobs or [None] * len(self.texts)
        return [
            Choice(k, k // self.n, text, prompt, completion, reason, answer, scored)
            for k, (text, prompt, completion, reason, answer, scored) in enumerate(
                zip(self.texts, self.prompt_tokens, self.completion_tokens,
                    self.finish_reasons, logprobs, prompt_logprobs, strict=True)
            )
        ]  # fmt: skip


@dataclass(frozen=True)
class Delta:
    """One step of a streamed request: the text added to choice `index` since its previous
    delta.

    With Sampling.n > 1 the choices' deltas interleave; each choice's last delta has
    `finish_reason` set (its text may be empty), and the stream ends once every choice
    finished. Token counts are running totals of the choice, so its last delta carries its
    usage. `logprobs` (where Sampling asked for them, else None): the tokens generated since
    the choice's previous delta, with their logprobs; a choice's deltas' lists, concatenated,
    are its Generation.logprobs. They need not line up with `text`, which an engine may hold
    back (a possible stop string, half a UTF-8 character).
    """

    text: str
    output_tokens: int  # generated so far (by this choice)
    prompt_tokens: int
    finish_reason: str | None = None
    index: int = 0  # the choice, 0 .. Sampling.n - 1
    logprobs: TokenLogprobs | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(frozen=True)
class Tokens:
    """A tokenized prompt (/tokenize): its ids and each id's token string."""

    ids: list[int]
    strs: list[str]


@runtime_checkable
class Engine(Protocol):
    """What the app needs from an engine. Calls may run concurrently: an engine batches them."""

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        """All prompts enter the engine together and come back in order, `sampling.n` choices
        each (Generation). `sampling` None means the settings' defaults. Raises
        PromptTooLong, or EngineDead once the engine died. Cancelling the call aborts what
        entered the engine."""
        ...

    def stream(self, prompt: Prompt, sampling: Sampling | None = None) -> AsyncIterator[Delta]:
        """One request's text as it is generated (an async generator): its `sampling.n`
        choices' deltas, interleaved (Delta.index). Closing or cancelling the iteration aborts
        the request in the engine."""
        ...

    async def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> Tokens:
        """The prompt's tokens as generation reads them (RawText with or without the
        tokenizer's special tokens)."""
        ...

    async def detokenize(self, ids: Sequence[int]) -> str:
        """The text of token ids (PromptRejected for an id outside the vocabulary)."""
        ...

    async def tokenizer_info(self) -> dict[str, Any]:
        """The tokenizer's class, special tokens and chat template (/tokenizer_info)."""
        ...

    def facts(self) -> dict[str, Any]:
        """What /info reports about the engine (model, dtype, device, versions, ...)."""
        ...

    @property
    def dead(self) -> bool:
        """True once the engine can serve nothing more (health turns 503)."""
        ...

    @property
    def unfinished(self) -> int:
        """Requests (one per prompt and choice) the engine holds, running or queued, and not
        finished: a cheap read for /info and for tests that check aborted work leaves the
        engine."""
        ...

    def shutdown(self) -> None:
        """Release the engine's processes and memory."""
        ...


# Builds a ready engine for the settings and the resolved checkpoint directory. Blocking and
# slow (the app calls it in a thread); any exception means the engine failed to start.
EngineFactory = Callable[["Settings", Path], Engine]
