"""ENGINE_REPLICAS: several engines of one kind behind the one Engine the app sees.

Engine-neutral: it dispatches over the Engine Protocol, so any engine (vLLM, a fake in tests)
can be replicated. A single prompt or a stream goes to the least-loaded live replica (prompts
it holds from this dispatcher); a list is split into contiguous slices, one per live replica,
generated concurrently and put back together in order. A replica that dies turns only its
own requests into EngineDead (the HTTP layer's fast 503); the others keep serving, and the
whole engine is dead only when every replica is.

Process layout, for vLLM: one AsyncLLM per replica in the API process, each with its own
engine-core process (vLLM's default multiprocessing). Each engine core then schedules on its
own CPU thread, which is what a small model on a GPU lacks (issue #13's probe on an H200: one
engine 24.5k-35k output tok/s, two engine processes on the same GPU 57.7k together), while
requests keep one HTTP front. Each replica takes 1/N of the device memory (the engine does the
split: llmserve/engines/vllm/args.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmserve.engines.base import (
    Delta,
    Engine,
    EngineDead,
    EngineError,
    EngineFactory,
    Generation,
    Prompt,
    PromptTooLong,
    Sampling,
    TokenLogprobs,
    Tokens,
)

if TYPE_CHECKING:
    from llmserve.engines.attach import Attachment
    from llmserve.settings import Settings


@dataclass
class Replica:
    index: int
    engine: Engine
    load: int = 0  # prompts this dispatcher has in flight on it
    served: int = 0  # prompts it was given, over the engine's life (/info)


class ReplicatedEngine:
    """N engines as one Engine (see the module docstring)."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        if not engines:
            raise ValueError("ReplicatedEngine needs at least one engine")
        self.replicas = [Replica(index, engine) for index, engine in enumerate(engines)]

    # --- dispatch --------------------------------------------------------------------------

    def _live(self) -> list[Replica]:
        live = [r for r in self.replicas if not r.engine.dead]
        if not live:
            raise EngineDead(f"all {len(self.replicas)} engine replicas died")
        return live

    def _least_loaded(self) -> Replica:
        return min(self._live(), key=lambda r: (r.load, unfinished(r.engine), r.index))

    @contextmanager
    def _holding(self, replica: Replica, prompts: int) -> Iterator[None]:
        """Counts `prompts` (prompts x n: the sequences it decodes) on `replica` while the
        block runs; a failure of a replica that died becomes EngineDead naming it (its
        requests fail fast, the others serve on)."""
        replica.load += prompts
        replica.served += prompts
        try:
            yield
        except EngineDead as exc:
            raise EngineDead(f"engine replica {replica.index} died: {exc}") from exc
        except EngineError:
            raise  # PromptTooLong: the request's own fault
        except Exception as exc:
            if replica.engine.dead:
                raise EngineDead(f"engine replica {replica.index} died: {exc}") from exc
            raise
        finally:
            replica.load -= prompts

    async def _generate_on(
        self,
        replica: Replica,
        prompts: Sequence[Prompt],
        sampling: Sampling | None,
        offset: int = 0,
    ) -> Generation:
        """`prompts` (the list's items from `offset` on) generated on `replica`."""
        with self._holding(replica, len(prompts) * (sampling.n if sampling else 1)):
            try:
                return await replica.engine.generate(prompts, sampling)
            except PromptTooLong as exc:  # name the prompt by its place in the whole list
                if not offset:
                    raise
                raise PromptTooLong(exc.index + offset, exc.tokens, exc.limit) from None

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        live = self._live()
        if len(prompts) <= 1 or len(live) == 1:
            return await self._generate_on(self._least_loaded(), prompts, sampling)
        # Least-loaded replicas take the first (and, when uneven, the larger) slices.
        live.sort(key=lambda r: (r.load, unfinished(r.engine), r.index))
        slices = split(list(prompts), len(live))
        offsets = [sum(len(part) for part in slices[:i]) for i in range(len(slices))]
        tasks = [
            asyncio.create_task(self._generate_on(r, part, sampling, offset))
            for r, part, offset in zip(live, slices, offsets, strict=True)
            if part
        ]
        try:
            return merge(await asyncio.gather(*tasks))
        except BaseException:  # one slice failed, or the caller gave up: abort the others
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        replica = self._least_loaded()
        with self._holding(replica, sampling.n if sampling else 1):
            iterator = replica.engine.stream(prompt, sampling)
            try:
                async for delta in iterator:
                    yield delta
            finally:
                await iterator.aclose()  # aborts the request in that replica

    # --- the rest of the Protocol ----------------------------------------------------------

    async def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> Tokens:
        """Any live replica's tokenizer (all serve the same model)."""
        return await self._live()[0].engine.tokenize(prompt, add_special_tokens)

    async def detokenize(self, ids: Sequence[int]) -> str:
        return await self._live()[0].engine.detokenize(ids)

    async def tokenizer_info(self) -> dict[str, Any]:
        return await self._live()[0].engine.tokenizer_info()

    def facts(self) -> dict[str, Any]:
        """The first replica's facts (all run the same settings), plus one row per replica."""
        facts = dict(self.replicas[0].engine.facts())
        facts["replicas"] = [
            {
                "index": r.index,
                "dead": r.engine.dead,
                "load": r.load,
                "served": r.served,
                "unfinished": unfinished(r.engine),
            }
            for r in self.replicas
        ]
        return facts

    @property
    def dead(self) -> bool:
        return all(r.engine.dead for r in self.replicas)

    @property
    def unfinished(self) -> int:
        return sum(unfinished(r.engine) for r in self.replicas)

    def shutdown(self) -> None:
        for replica in self.replicas:
            replica.engine.shutdown()


def unfinished(engine: Engine) -> int:
    """The engine's unfinished requests, 0 where it cannot say: vLLM 0.26's AsyncLLM (the GPU
    build measured for issue #13) has no get_num_unfinished_requests, which the vLLM engine's
    `unfinished` calls. Dispatch counts its own in-flight prompts first; this only breaks ties."""
    try:
        return engine.unfinished
    except AttributeError:
        return 0


def split(items: list[Prompt], parts: int) -> list[list[Prompt]]:
    """`items` in `parts` contiguous slices whose sizes differ by at most one, larger first."""
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for part in range(parts):
        end = start + size + (1 if part < extra else 0)
        slices.append(items[start:end])
        start = end
    return slices


def merge(parts: Sequence[Generation]) -> Generation:
    """Generations of consecutive slices as one, in order. The replicas ran concurrently, so
    the engine time is the longest part's and the first token the earliest."""
    ttfts = [p.ttft_seconds for p in parts if p.ttft_seconds is not None]
    return Generation(
        texts=[t for p in parts for t in p.texts],
        prompt_tokens=[n for p in parts for n in p.prompt_tokens],
        completion_tokens=[n for p in parts for n in p.completion_tokens],
        finish_reasons=[r for p in parts for r in p.finish_reasons],
        engine_seconds=max(p.engine_seconds for p in parts),
        ttft_seconds=min(ttfts) if ttfts else None,
        logprobs=_joined([p.logprobs for p in parts], [len(p.texts) for p in parts]),
        prompt_logprobs=_joined(
            [p.prompt_logprobs for p in parts], [len(p.texts) for p in parts]
        ),
        n=parts[0].n,  # slices of whole prompts: each part has the request's n choices
    )


def _joined(rows: list[list[TokenLogprobs | None] | None], sizes: list[int]) -> Any:
    """Per-choice token lists of consecutive slices as one list (None where none asked)."""
    if all(row is None for row in rows):
        return None
    return [t for row, n in zip(rows, sizes, strict=True) for t in (row or [None] * n)]


def starts_may_overlap(settings: Settings) -> bool:
    """Whether the replicas may start at the same time. Not for vLLM on a GPU: each engine
    sizes its KV cache from the device's free memory before and after its profiling run,
    assuming no other process changes its use meanwhile (vllm/v1/worker/gpu_worker.py), so a
    replica loading or allocating beside another's profiling shrinks that one's cache or fails
    its start. There they start one after another, each taking its 1/N of the memory (and the
    later ones reuse the first one's torch.compile cache). On CPU the KV cache is a fixed
    size, and starts overlap."""
    if settings.engine != "vllm":
        return True
    from llmserve.engines.vllm.device import is_cpu_build

    return is_cpu_build()


def replicated(factory: EngineFactory, replicas: int) -> EngineFactory:
    """`factory` itself for one replica; else a factory that builds `replicas` engines and
    shuts down those that started when one fails. The first starts alone: two vLLM starts
    from fresh threads raced in transformers' lazy imports ("cannot import name
    'AutoTokenizer'", seen here); the rest then start together, overlapping their waits on
    their engine-core processes."""
    if replicas == 1:
        return factory

    def build(settings: Settings, model_dir: Path) -> Engine:
        engines = [factory(settings, model_dir)]
        with ThreadPoolExecutor(max_workers=replicas - 1, thread_name_prefix="replica") as pool:
            futures = [pool.submit(factory, settings, model_dir) for _ in range(replicas - 1)]
        engines += [f.result() for f in futures if f.exception() is None]
        failures = [f.exception() for f in futures if f.exception() is not None]
        if failures:
            for engine in engines:
                engine.shutdown()
            raise failures[0]  # type: ignore[misc]
        return ReplicatedEngine(engines)

    return build


def replica_factory(
    settings: Settings, factory: EngineFactory | None = None, attach: Sequence[Attachment] = ()
) -> EngineFactory:
    """The app's engine factory for ENGINE_REPLICAS and REPLICA_LAYOUT: `factory` (default:
    the ENGINE setting's) replicated in the API process, or, for REPLICA_LAYOUT=process and
    the ENGINE setting's own engine, one worker process per replica (ProcessEngine; a given
    `factory`, e.g. a test's fake, cannot be rebuilt in another process). `attach`: engines
    another process owns (an API_SERVERS front; engines/attach.py), one replica each."""
    from llmserve.engines import load_engine_factory

    if attach:
        from llmserve.engines.attach import attached_engine

        def attached(settings: Settings, model_dir: Path) -> Engine:
            engines = [attached_engine(settings, model_dir, a) for a in attach]
            return engines[0] if len(engines) == 1 else ReplicatedEngine(engines)

        return attached
    if settings.engine_replicas > 1 and settings.replica_layout == "process" and factory is None:
        from llmserve.engines.process.client import ProcessEngine

        return replicated(ProcessEngine, settings.engine_replicas)
    return replicated(factory or load_engine_factory(settings.engine), settings.engine_replicas)
