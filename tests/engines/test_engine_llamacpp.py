"""The llama.cpp engine (ENGINE=llamacpp) on the real bundled SmolLM2 GGUF: batching keeps
answers, concurrent requests decode together, aborts free their slots, limits and seeds hold.
Skipped where llama-cpp-python is not installed (requirements-llamacpp.txt)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmserve.engines.base import Delta, PromptTooLong, Sampling
from llmserve.engines.structured import StructuredSpec
from llmserve.settings import Settings

pytest.importorskip("llama_cpp")
from llmserve.engines.llamacpp.engine import LlamaCppEngine

pytestmark = pytest.mark.engine

GREEDY = Sampling(max_tokens=24, temperature=0.0)
PROMPTS = ["What is the capital of France?", "Name three colors.", "Count from 1 to 5."]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    settings = Settings(engine="llamacpp", max_model_len=512, llamacpp_parallel=4)
    built = LlamaCppEngine(settings, Path("."))
    try:
        yield built
    finally:
        built.shutdown()


def test_a_list_comes_back_in_order_with_the_answers_computed_alone(
    engine: LlamaCppEngine,
) -> None:
    batched = asyncio.run(engine.generate(PROMPTS, GREEDY))
    alone = [asyncio.run(engine.generate([p], GREEDY)).texts[0] for p in PROMPTS]
    assert batched.texts == alone
    assert all(batched.texts) and len(set(batched.texts)) == len(PROMPTS)
    assert batched.output_tokens == sum(batched.completion_tokens) > 0


def test_concurrent_streams_progress_together(engine: LlamaCppEngine) -> None:
    """Both streams yield text before either finishes: they share decode steps instead of
    one queueing behind the other."""
    events: list[tuple[int, Delta]] = []
    sampling = Sampling(max_tokens=16, temperature=0.0, ignore_eos=True)

    async def consume(index: int) -> None:
        async for delta in engine.stream(PROMPTS[index], sampling):
            events.append((index, delta))

    async def both() -> None:
        await asyncio.gather(consume(0), consume(1))

    asyncio.run(both())
    first_finish = next(i for i, (_, d) in enumerate(events) if d.finished)
    before = {index for index, delta in events[:first_finish] if delta.text}
    assert before == {0, 1}
    assert [d.output_tokens for i, d in events if i == 0 and d.finished] == [16]


def test_closing_a_stream_aborts_it(engine: LlamaCppEngine) -> None:
    async def one_delta_then_close() -> tuple[int, int]:
        stream = engine.stream(PROMPTS[0], Sampling(max_tokens=200, ignore_eos=True))
        await anext(stream)
        during = engine.unfinished
        await stream.aclose()
        return during, engine.unfinished

    during, after = asyncio.run(one_delta_then_close())
    assert (during, after) == (1, 0)
    # The freed slot serves the next request from a clean KV cache: same greedy answer.
    again = asyncio.run(engine.generate([PROMPTS[1]], GREEDY)).texts
    assert again == asyncio.run(engine.generate([PROMPTS[1]], GREEDY)).texts


def test_a_prompt_too_long_is_refused(engine: LlamaCppEngine) -> None:
    with pytest.raises(PromptTooLong) as caught:
        asyncio.run(engine.generate(["short", "word " * 600], GREEDY))
    assert caught.value.index == 1 and caught.value.limit == 512
    assert engine.unfinished == 0


def test_a_seed_reproduces_a_sampled_answer(engine: LlamaCppEngine) -> None:
    sampled = Sampling(max_tokens=24, temperature=1.0, top_p=0.95, seed=7)
    first = asyncio.run(engine.generate(PROMPTS[:1], sampled)).texts
    assert asyncio.run(engine.generate(PROMPTS[:1], sampled)).texts == first


def test_a_stop_string_ends_the_answer_before_it(engine: LlamaCppEngine) -> None:
    full = asyncio.run(engine.generate(PROMPTS[:1], GREEDY))
    stop = full.texts[0].split()[2]
    stopped = asyncio.run(engine.generate(PROMPTS[:1], GREEDY.replace(stop=[stop])))
    assert stopped.finish_reasons == ["stop"]
    assert full.texts[0].startswith(stopped.texts[0]) and stop not in stopped.texts[0]


def test_facts_name_the_gguf_and_the_batching(engine: LlamaCppEngine) -> None:
    facts = engine.facts()
    assert facts["model"].endswith(".gguf") and facts["parallel"] == 4
    assert facts["n_ctx_per_sequence"] == 512 and facts["threads"] >= 1
    assert facts["prefill_chunk"] == 128  # LLAMACPP_PREFILL_CHUNK's default


@pytest.mark.parametrize("chunk", [16, 512])
def test_a_new_prompt_is_prefilled_in_chunks_between_decode_steps(
    engine: LlamaCppEngine, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that generates keeps getting tokens while a long new prompt is prefilled:
    one per chunk of LLAMACPP_PREFILL_CHUNK prompt tokens (a whole-prompt step, chunk 512,
    gives it at most the one token of that step)."""
    monkeypatch.setattr(engine.loop, "prefill_chunk", chunk)
    long_prompt = " ".join(f"word{i}" for i in range(100))  # ~300 tokens
    events: list[str] = []

    async def scenario() -> None:
        running = engine.stream(PROMPTS[0], Sampling(max_tokens=400, ignore_eos=True))
        await anext(running)  # generating now

        async def follow() -> None:
            async for _ in running:
                events.append("running")

        follower = asyncio.create_task(follow())
        events.append("submitted")
        async for _ in engine.stream(long_prompt, Sampling(max_tokens=1, ignore_eos=True)):
            events.append("new")
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await running.aclose()

    asyncio.run(scenario())
    during = events[events.index("submitted") : events.index("new")].count("running")
    prompt_tokens = len(engine.renderer.token_ids([long_prompt])[0])
    if chunk == 16:
        assert during >= prompt_tokens // 16 - 2, (during, prompt_tokens)
    else:
        assert during <= 2, (during, prompt_tokens)
    assert engine.unfinished == 0


def test_integer_bounds_of_a_schema_hold_in_sampled_answers(engine: LlamaCppEngine) -> None:
    """llama-cpp-python's converter leaves minimum/maximum out; the engine's grammar keeps
    them (schema.py). Sampled hot, so the unconstrained model would stray."""
    import jsonschema

    schema = {"type": "object", "required": ["score", "zip"],
              "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                             "zip": {"type": "integer", "minimum": 100, "maximum": 99999}}}
    spec = StructuredSpec("json", json.dumps(schema))
    prompts = [f"Rate movie {i} from 1 to 500 and give a zip code, as JSON." for i in range(6)]
    sampled = Sampling(max_tokens=48, temperature=1.5, seed=3, structured=spec)
    answers = asyncio.run(engine.generate(prompts, sampled)).texts
    for answer in answers:
        jsonschema.validate(json.loads(answer), schema)
