"""One request inside the llama.cpp decode loop: its prompt, sampler chain, output text with
stop strings and EOS, and the callback that hands deltas to the asyncio side."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmserve.engines.base import Delta, Sampling
from llmserve.engines.llamacpp.scores import token_logprobs

# Seed of an unseeded request: llama.cpp picks a random one.
LLAMA_DEFAULT_SEED = 0xFFFFFFFF


def sampler_chain(llama_cpp: Any, sampling: Sampling, vocab_size: int, grammar: Any = None) -> Any:
    """llama.cpp's sampler chain for `sampling`: a grammar (if any), penalties, top-k, top-p,
    temperature, then a seeded draw; greedy when the temperature is 0."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if grammar is not None:  # first: it masks what the others choose from
        add(chain, grammar)
    if (
        sampling.repetition_penalty != 1.0
        or sampling.frequency_penalty
        or sampling.presence_penalty
    ):
        add(
            chain,
            llama_cpp.llama_sampler_init_penalties(
                vocab_size,
                64,  # the last 64 tokens are penalized, as llama.cpp's default
                sampling.repetition_penalty,
                sampling.frequency_penalty,
                sampling.presence_penalty,
            ),
        )
    if sampling.temperature == 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if sampling.top_k:
        add(chain, llama_cpp.llama_sampler_init_top_k(sampling.top_k))
    if sampling.top_p < 1.0:
        add(chain, llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(sampling.temperature))
    seed = LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed & 0xFFFFFFFF
    add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


@dataclass
class Request:
    """A prompt waiting for, or decoding in, a sequence slot."""

    prompt_ids: list[int]
    sampling: Sampling
    max_tokens: int  # sampling.max_tokens lowered to what MAX_MODEL_LEN leaves
    emit: Callable[[Delta | BaseException], None]  # thread-safe: to the asyncio side
    pieces: Callable[[list[int]], bytes]  # token ids -> their text's UTF-8 bytes
    grammar: str | None = None  # GBNF, already parsed once by llama.cpp (grammar.py)
    index: int = 0  # the choice it draws (Delta.index), of its request's Sampling.n
    cancelled: bool = False
    done: bool = False  # the last delta was emitted (set before it is)
    slot: int = -1
    fed: int = 0  # prompt tokens already in the KV cache
    output_ids: list[int] = field(default_factory=list)
    # The bytes of output_ids, a piece added per token: decoding the whole answer again at
    # every token cost 210 ms of the decode thread for a 512-token answer (3.3 ms for 64),
    # with the GIL held (Intel Xeon, 2 cores, busy; 2026-12-07).
    output_bytes: bytearray = field(default_factory=bytearray)
    sent_chars: int = 0
    sampler: Any = None
    # Sampling.prompt_logprobs / logprobs: scores of prompt tokens 1.. and of generated ones.
    prompt_scores: list[Any] = field(default_factory=list)
    sample_scores: list[Any] = field(default_factory=list)
    sent_scores: int = 0  # sample_scores already in an emitted delta

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt_ids)

    @property
    def position(self) -> int:
        """Position of the next token fed to the model."""
        return self.fed + max(0, len(self.output_ids) - 1)

    def accept(self, token: int, is_eog: bool) -> bool:
        """Takes a sampled token; emits the text it completes. True when the request ended."""
        if is_eog and not self.sampling.ignore_eos:
            return self._finish("stop", self._text())
        self.output_ids.append(token)
        self.output_bytes += self.pieces([token])
        text = self._text()
        stops = self.sampling.stop
        for stop in stops:
            at = text.find(stop)
            if at >= 0:
                return self._finish("stop", text[:at])
        if len(self.output_ids) >= self.max_tokens:
            return self._finish("length", text)
        # Hold back what could be the start of a stop string, and half a UTF-8 character.
        hold = max((len(s) - 1 for s in stops), default=0)
        safe = len(text) - hold
        if text.endswith("\ufffd"):
            safe = min(safe, len(text) - 1)
        if safe > self.sent_chars:
            self._send(text[self.sent_chars : safe], None)
        return False

    def _text(self) -> str:
        return self.output_bytes.decode("utf-8", errors="replace")

    def _finish(self, reason: str, text: str) -> bool:
        self.done = True
        self._send(text[self.sent_chars :], reason)
        return True

    def _send(self, text: str, reason: str | None) -> None:
        """A delta of `text`, with the logprobs of the tokens scored since the previous one
        (where asked for): held-back text lags its tokens, their logprobs do not."""
        self.sent_chars += len(text)
        logprobs = None
        if self.sampling.logprobs is not None:
            scores = self.sample_scores[self.sent_scores :]
            self.sent_scores += len(scores)
            logprobs = token_logprobs(scores, lambda token: decode(self.pieces([token])))
        self.emit(Delta(text, len(self.output_ids), len(self.prompt_ids), reason, self.index,
                        logprobs))  # fmt: skip


def decode(pieces: bytes) -> str:
    return pieces.decode("utf-8", errors="replace")


def token_pieces(llama_cpp: Any, vocab: Any) -> Callable[[list[int]], bytes]:
    """Token ids -> their text's bytes through llama.cpp's own vocabulary (special tokens left
    out). Safe from any thread."""

    def pieces(ids: list[int]) -> bytes:
        out = bytearray()
        buf = ctypes.create_string_buffer(256)
        for token in ids:
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
            out += buf.raw[: max(n, 0)]
        return bytes(out)

    return pieces
