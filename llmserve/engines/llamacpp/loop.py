"""The llama.cpp decode loop: one llama_context with LLAMACPP_PARALLEL sequence slots, run by
one thread. Each step admits waiting requests into free slots and makes one llama_decode call
over all active sequences (one token per generating sequence, then prompt chunks up to
LLAMACPP_BATCH), as llama.cpp's own server does, so concurrent requests decode together
instead of queueing one behind another."""

from __future__ import annotations

import collections
import threading
from typing import Any

from llmserve.engines.llamacpp.grammar import grammar_sampler
from llmserve.engines.llamacpp.scores import score
from llmserve.engines.llamacpp.slots import Request, sampler_chain


class DecodeLoop:
    """Owns the llama.cpp context; `submit` and `cancel` are safe from any thread."""

    def __init__(self, llama_cpp: Any, model: Any, ctx: Any, n_batch: int, n_seq: int,
                 prefill_chunk: int | None = None) -> None:
        """`prefill_chunk`: prompt tokens a step takes while other sequences generate (None:
        as many as the batch holds); with none generating, a step takes a whole batch."""
        self.lib, self.model, self.ctx = llama_cpp, model, ctx
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_batch, self.n_seq = n_batch, n_seq
        self.prefill_chunk = min(prefill_chunk or n_batch, n_batch)
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.waiting: collections.deque[Request] = collections.deque()
        self.slots: list[Request | None] = [None] * n_seq
        self.wake = threading.Condition()
        self.stopping = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="llamacpp-decode", daemon=True)
        self.thread.start()

    @property
    def unfinished(self) -> int:
        # A cancelled or finished request counts as gone at once; its slot frees a step later.
        held = [*self.waiting, *self.slots]
        return sum(r is not None and not r.cancelled and not r.done for r in held)

    @property
    def dead(self) -> bool:
        return self.error is not None or not self.thread.is_alive()

    def submit(self, request: Request) -> None:
        with self.wake:
            self.waiting.append(request)
            self.wake.notify()

    def cancel(self, request: Request) -> None:
        with self.wake:
            request.cancelled = True
            self.wake.notify()

    def stop(self) -> None:
        with self.wake:
            self.stopping = True
            self.wake.notify()
        self.thread.join()

    def _run(self) -> None:
        try:
            while True:
                with self.wake:
                    self._drop_cancelled()
                    while not self.stopping and not self.waiting and not any(self.slots):
                        self.wake.wait()
                    if self.stopping:
                        break
                    self._admit()
                self._step()
        except BaseException as error:  # every request learns the loop died
            self.error = error
            for request in [*self.waiting, *(r for r in self.slots if r is not None)]:
                request.emit(error)
        finally:
            self._release_all()

    def _drop_cancelled(self) -> None:
        self.waiting = collections.deque(r for r in self.waiting if not r.cancelled)
        for request in self.slots:
            if request is not None and request.cancelled:
                self._free(request)

    def _admit(self) -> None:
        for slot, occupant in enumerate(self.slots):
            if occupant is None and self.waiting:
                request = self.waiting.popleft()
                request.slot = slot
                grammar = request.grammar and grammar_sampler(self.lib, self.vocab, request.grammar)
                request.sampler = sampler_chain(
                    self.lib, request.sampling, self.n_vocab, grammar or None
                )
                self.slots[slot] = request

    def _free(self, request: Request) -> None:
        self.lib.llama_memory_seq_rm(self.memory, request.slot, -1, -1)
        if request.sampler is not None:
            self.lib.llama_sampler_free(request.sampler)
            request.sampler = None
        self.slots[request.slot] = None

    def _step(self) -> None:
        """One llama_decode over every active sequence, then one sample per sequence whose
        logits came out."""
        batch, n = self.batch, 0
        sample_at: list[tuple[Request, int]] = []
        score_at: list[tuple[Request, int, int]] = []  # (request, prompt position, index)

        def add(token: int, position: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n] = token, position
            batch.n_seq_id[n], batch.seq_id[n][0], batch.logits[n] = 1, seq, logits
            n += 1

        active = [r for r in self.slots if r is not None]
        for request in active:  # generating sequences first: one token each
            if not request.prefilling:
                add(request.output_ids[-1], request.position, request.slot, True)
                sample_at.append((request, n - 1))
        # Then prompt chunks: while others generate, at most prefill_chunk prompt tokens, so a
        # new prompt delays their next token by one chunk's time rather than its whole prefill.
        limit = n + self.prefill_chunk if n else self.n_batch
        limit = min(limit, self.n_batch)
        for request in active:
            if request.prefilling and n < limit:
                take = min(limit - n, len(request.prompt_ids) - request.fed)
                scored = request.sampling.prompt_logprobs is not None  # echo: every logit
                for i in range(request.fed, request.fed + take):
                    last = i == len(request.prompt_ids) - 1
                    add(request.prompt_ids[i], i, request.slot, last or scored)
                    if scored and not last:
                        score_at.append((request, i, n - 1))
                request.fed += take
                if not request.prefilling:
                    sample_at.append((request, n - 1))
        if n == 0:
            return
        batch.n_tokens = n
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        for request, position, index in score_at:  # position predicts position + 1
            k = request.sampling.prompt_logprobs or 0
            request.prompt_scores.append(score(self.lib, self.ctx, index, self.n_vocab,
                                               request.prompt_ids[position + 1], k))
        for request, index in sample_at:
            if request.cancelled:  # closed while this step ran: nobody reads its deltas
                continue
            token = self.lib.llama_sampler_sample(request.sampler, self.ctx, index)
            is_eog = bool(self.lib.llama_vocab_is_eog(self.vocab, token))
            if request.sampling.logprobs is not None and not (
                is_eog and not request.sampling.ignore_eos
            ):  # an end-of-generation token is not part of the answer
                request.sample_scores.append(score(self.lib, self.ctx, index, self.n_vocab,
                                                   token, request.sampling.logprobs))
            if request.accept(token, is_eog):
                with self.wake:
                    self._free(request)

    def _release_all(self) -> None:
        for request in self.slots:
            if request is not None:
                self._free(request)
        self.lib.llama_batch_free(self.batch)
