"""The llama.cpp engine (ENGINE=llamacpp): serves a GGUF file (MODEL_GGUF, or the bundled
SmolLM2 GGUF read directly) through llama-cpp-python's low-level API.

Prompts are rendered with the GGUF's own chat template and tokenizer (transformers reads both
from the GGUF) by the shared PromptRenderer, so /predict feeds the same tokens as with vLLM.
The decode loop (llmserve.engines.llamacpp.loop) batches every request in flight; this module
is the asyncio side: each request's deltas arrive on an asyncio.Queue fed from the loop's
thread with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmserve.engines.base import (
    Delta,
    EngineDead,
    Generation,
    Prompt,
    PromptTooLong,
    Sampling,
    TokenLogprob,
    TokenLogprobs,
)
from llmserve.engines.llamacpp.grammar import checked_gbnf
from llmserve.engines.llamacpp.loop import DecodeLoop
from llmserve.engines.llamacpp.scores import token_logprobs
from llmserve.engines.llamacpp.slots import Request, decode, token_pieces
from llmserve.engines.render import PromptRenderer, RendererTokenizer, check_ids
from llmserve.system import cpu_flags, usable_cores

if TYPE_CHECKING:
    from llmserve.settings import Settings


def gguf_path(settings: Settings) -> Path:
    """MODEL_GGUF, or the bundled model at LLAMACPP_EMBEDDED_LEVEL (made once if need be)."""
    if settings.model_gguf is not None:
        if not settings.model_gguf.is_file():
            raise FileNotFoundError(f"MODEL_GGUF={str(settings.model_gguf)!r} is not a file")
        return settings.model_gguf
    from llmserve.gguf.bundled import embedded_gguf

    return embedded_gguf(settings.cache_dir, settings.llamacpp_embedded_level)


def repack_default(setting: bool | None) -> bool:
    """Whether llama.cpp gets its extra CPU buffer types (LLAMACPP_REPACK; unset: not on AMX).

    With them the first llama_decode segfaulted on the Intel Xeon with amx_bf16/amx_int8
    (llama-cpp-python 0.3.36 built from source, the bundled Q4_1 GGUF), even through the
    high-level Llama class. Without AMX they repack weights for faster kernels. Measured on
    the 2-core AMD EPYC (avx512f, avx512_vnni, avx512_bf16, no AMX), one llama_decode of 128
    prompt tokens / of one token, 2 threads, median ms, off -> on:
      bundled Q4_1   246 / 5.3 -> 248 / 5.3  (no repacked kernel for Q4_1)
      Q4_0           125 / 4.6 -> 64 / 4.0
      Q8_0           115 / 8.2 -> 116 / 5.6
    """
    if setting is not None:
        return setting
    flags = set(cpu_flags())
    return not flags & {"amx_bf16", "amx_int8", "amx_tile"}


class LlamaCppEngine(RendererTokenizer):
    """An Engine over one llama.cpp context with LLAMACPP_PARALLEL sequence slots."""

    def __init__(self, settings: Settings, model_dir: Path) -> None:
        import llama_cpp
        from transformers import AutoTokenizer

        self.settings = settings
        self.model_dir = model_dir
        self.gguf = gguf_path(settings)
        self.max_model_len = settings.max_model_len
        self.threads = settings.llamacpp_threads or usable_cores()
        self.n_seq = settings.llamacpp_parallel
        # Every generating sequence needs one batch place per step.
        self.n_batch = max(settings.llamacpp_batch, self.n_seq)
        tokenizer = AutoTokenizer.from_pretrained(str(self.gguf.parent), gguf_file=self.gguf.name)
        self.renderer = PromptRenderer(tokenizer, settings.system_prompt, settings.raw_prompt)

        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.use_extra_bufts = self.repack = repack_default(settings.llamacpp_repack)
        model = llama_cpp.llama_model_load_from_file(str(self.gguf).encode(), model_params)
        if not model:
            raise RuntimeError(f"llama.cpp could not load MODEL_GGUF={str(self.gguf)!r}")
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = self.max_model_len * self.n_seq
        ctx_params.n_seq_max = self.n_seq
        # ubatch = batch, and llama.cpp's flash attention left on auto (on for the CPU): the
        # fastest prefill measured. 2-core AMD EPYC (avx2, fma; no AVX-512), 2026-12-07,
        # `scripts/llamacpp_prefill.py` (one llama_decode of 512 prompt tokens, 2 threads),
        # tok/s with flash attention auto / off: bundled Q4_1 at ubatch 512: 277 / 183, 256:
        # 259 / 228, 128: 245 / 261; Q4_0 at 512: 544 / 455; Q8_0 at 512: 480 / 389. Threads:
        # the usable cores (both for batches too: prefill is compute-bound); 2-core AVX-512
        # Xeon, 2026-12-08, Q4_1, 8 concurrent streams of 128 in / 64 out through
        # /v1/completions: 2 threads 65.1 tok/s, 1 thread 35.7 (docs/engines.md). The KV
        # cache stays llama.cpp's default, one stream per sequence (kv_unified off): one
        # shared stream gave 71.3 tok/s against 76.5 there (scripts/llamacpp_steps.py).
        ctx_params.n_batch = ctx_params.n_ubatch = self.n_batch
        ctx_params.n_threads = ctx_params.n_threads_batch = self.threads
        ctx = llama_cpp.llama_init_from_model(model, ctx_params)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise RuntimeError("llama.cpp could not create a context")
        self.lib, self.model, self.ctx = llama_cpp, model, ctx
        self.n_ctx_seq = llama_cpp.llama_n_ctx(ctx) // self.n_seq
        self.loop = DecodeLoop(llama_cpp, model, ctx, self.n_batch, self.n_seq,
                               settings.llamacpp_prefill_chunk)
        self.vocab_size = int(self.loop.n_vocab)
        self.pieces = token_pieces(llama_cpp, self.loop.vocab)
        description = bytes(256)
        size = llama_cpp.llama_model_desc(model, description, len(description))
        self.description = description[: max(size, 0)].decode(errors="replace")

    @property
    def dead(self) -> bool:
        return self.loop.dead

    @property
    def unfinished(self) -> int:
        return self.loop.unfinished

    def _check(self, prompt_ids: list[list[int]]) -> None:
        if self.dead:
            raise EngineDead(f"the llama.cpp decode loop died: {self.loop.error!r}")
        for index, ids in enumerate(prompt_ids):
            if len(ids) >= self.max_model_len:
                raise PromptTooLong(index, len(ids), self.max_model_len)
            check_ids(ids, self.vocab_size, f"prompt[{index}]")  # token-id prompts


    def _request(
        self,
        ids: list[int],
        sampling: Sampling,
        queue: asyncio.Queue[Delta | BaseException],
        index: int = 0,
    ) -> Request:
        """Choice `index` of `sampling.n` for prompt `ids`. llama.cpp has no parallel
        sampling: each choice is a request of its own, drawn with Sampling.choice(index) (a
        seed of seed + index: the choices differ, and the same request gives the same
        choices again; vLLM seeds its parallel samples the same way)."""
        loop = asyncio.get_running_loop()

        def emit(item: Delta | BaseException) -> None:
            # The caller's event loop may be gone (a stream closed, then asyncio.run ended)
            # before the decode thread sees the cancel: that request's deltas are dropped,
            # and the decode loop lives on (CI saw it die here, failing every later request).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        return Request(
            prompt_ids=ids,
            sampling=sampling.choice(index),
            # max_tokens 0 (score the prompt only): one token is generated and left out.
            max_tokens=min(max(sampling.max_tokens, 1), self.max_model_len - len(ids)),
            emit=emit,
            pieces=self.pieces,
            grammar=checked_gbnf(self.lib, self.loop.vocab, sampling.structured),
            index=index,
        )

    async def _deltas(
        self, requests: list[Request], queue: asyncio.Queue[Any]
    ) -> AsyncIterator[Delta]:
        """The deltas of `requests` (one prompt's choices, sharing `queue`) as they come,
        until every one finished."""
        for request in requests:
            self.loop.submit(request)
        running = len(requests)
        while running:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise EngineDead(f"the llama.cpp decode loop died: {item!r}") from item
            yield item
            running -= item.finished

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        sampling = sampling or Sampling.from_settings(self.settings)
        (ids,) = await asyncio.to_thread(self.renderer.token_ids, [prompt])
        self._check([ids])
        queue: asyncio.Queue[Any] = asyncio.Queue()
        requests = [self._request(ids, sampling, queue, i) for i in range(sampling.n)]
        try:
            async for delta in self._deltas(requests, queue):
                yield delta
        finally:  # closing or cancelling the stream frees the sequence slots
            for request in requests:
                self.loop.cancel(request)

    async def _collect(
        self, ids: list[int], sampling: Sampling, marks: dict[str, float], index: int
    ) -> tuple[Delta, Request]:
        """Choice `index` of prompt `ids`, whole."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        text: list[str] = []
        last = Delta("", 0, len(ids))
        request = self._request(ids, sampling, queue, index)
        try:
            async for delta in self._deltas([request], queue):
                if delta.output_tokens and "first" not in marks:
                    marks["first"] = time.perf_counter()
                text.append(delta.text)
                last = delta
        finally:  # a cancelled generate() frees its sequence slots
            self.loop.cancel(request)
        return Delta("".join(text), last.output_tokens, len(ids), last.finish_reason), request

    def _piece(self, token: int) -> str:
        return decode(self.pieces([token]))

    def _logprobs(self, request: Request) -> tuple[TokenLogprobs | None, TokenLogprobs | None]:
        """The answer's and the prompt's TokenLogprobs, where the sampling asked for them."""
        sampling = request.sampling
        answer = prompt = None
        if sampling.logprobs is not None:
            keep = len(request.sample_scores) if sampling.max_tokens else 0
            answer = token_logprobs(request.sample_scores[:keep], self._piece)
        if sampling.prompt_logprobs is not None:
            first = request.prompt_ids[0]
            prompt = [TokenLogprob(self._piece(first), first, None),
                      *token_logprobs(request.prompt_scores, self._piece)]  # fmt: skip
        return answer, prompt

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        sampling = sampling or Sampling.from_settings(self.settings)
        ids = await asyncio.to_thread(self.renderer.token_ids, list(prompts))
        self._check(ids)
        # A constraint llama.cpp refuses is refused before any prompt enters the loop.
        checked_gbnf(self.lib, self.loop.vocab, sampling.structured)
        marks: dict[str, float] = {}
        start = time.perf_counter()
        results = await asyncio.gather(*(
            self._collect(prompt_ids, sampling, marks, choice)
            for prompt_ids in ids for choice in range(sampling.n)
        ))  # fmt: skip
        end = time.perf_counter()
        done = [d for d, _ in results]
        scored_only = sampling.max_tokens == 0  # the one generated token is not the answer
        pairs = [self._logprobs(r) for _, r in results]
        return Generation(
            texts=["" if scored_only else d.text for d in done],
            prompt_tokens=[d.prompt_tokens for d in done],
            completion_tokens=[0 if scored_only else d.output_tokens for d in done],
            finish_reasons=["length" if scored_only else d.finish_reason for d in done],
            engine_seconds=end - start,
            ttft_seconds=marks["first"] - start if "first" in marks else None,
            logprobs=None if sampling.logprobs is None else [a for a, _ in pairs],
            prompt_logprobs=None if sampling.prompt_logprobs is None else [p for _, p in pairs],
            n=sampling.n,
        )

    def facts(self) -> dict[str, Any]:
        return {
            "engine": "llamacpp",
            "model": str(self.gguf),
            "model_gguf": str(self.gguf),
            # The judge's token counter reads the tokenizer here: the bundled GGUF's converted
            # checkpoint has the same one; another GGUF's tokenizer is read from the GGUF.
            **({"model_dir": str(self.model_dir)} if self.settings.model_gguf is None else {}),
            "model_description": self.description,
            "quantization": self.description.rsplit(" ", 1)[-1],
            "device": "cpu",
            "n_ctx_per_sequence": self.n_ctx_seq,
            "parallel": self.n_seq,
            "threads": self.threads,
            "batch": self.n_batch,
            "prefill_chunk": self.loop.prefill_chunk,
            "repack": self.repack,
            "llama_cpp_python": self.lib.__version__,
            "chat_template": not self.renderer.raw,
        }

    def shutdown(self) -> None:
        self.loop.stop()
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)
